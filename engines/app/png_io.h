// PNG files in and out through libpng. Reading keeps what the file stores (no gamma, no palette
// expansion): class ids and instance ids are numbers, not colours. Low bit-depth grayscale is
// scaled to 8 bits as Pillow does (1-bit white reads 255); palette images give their indices.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace asap {
namespace app {

struct Raster {
    int width = 0;
    int height = 0;
    int channels = 0;               // 1 gray or palette index, 2 gray+alpha, 3 RGB, 4 RGBA
    int bitDepth = 0;               // as stored in the file: 1, 2, 4, 8 or 16
    bool palette = false;           // channels == 1 and the samples are palette indices
    std::vector<uint16_t> samples;  // height x width x channels, row-major

    std::string describe() const;  // e.g. "16-bit grayscale", "8-bit RGB", "4-bit palette"
};

constexpr int kMaxImageSide = 16384;

// Throws Error naming `path` when the file is missing, not a PNG, damaged or too large.
Raster readPng(std::string const& path);

// 8-bit grayscale (channels 1) or RGB (channels 3), rows of width*channels bytes. Written to a
// temporary file beside `path` and renamed into place, so a failure never leaves a partial
// file; permissions follow the umask. Missing parent folders are created.
void writePng(std::string const& path, uint8_t const* pixels, int width, int height, int channels);

}  // namespace app
}  // namespace asap
