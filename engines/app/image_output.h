// The generator's image tensor -> 8-bit pixels, exactly as the authors' test.py saves them
// (util.tensor2im): (x + 1) / 2 * 255 in float32, clipped to [0, 255], truncated (not rounded).
#pragma once

#include "tensor.h"

#include <cstddef>
#include <cstdint>
#include <vector>

namespace asap {
namespace app {

struct Image8 {
    int width = 0;
    int height = 0;
    int channels = 0;             // 3 (RGB) or 1 (grayscale)
    std::vector<uint8_t> pixels;  // height x width x channels
    size_t nanCount = 0;          // NaN outputs, written as 0 (numpy's cast leaves them undefined)
};

// One float32 value; NaN gives 0.
uint8_t imageValueToUint8(float x);

// `chw`: channels x height x width of float32 or float16 (one image of the batch).
Image8 imageFromTensor(void const* chw, DType dtype, int channels, int height, int width);

}  // namespace app
}  // namespace asap
