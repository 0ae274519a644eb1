#include "image_output.h"

#include "error.h"
#include "half.h"

#include <cmath>

namespace asap {
namespace app {

uint8_t imageValueToUint8(float x) {
    // float32 arithmetic in the order numpy evaluates (x + 1) / 2.0 * 255.0 on a float32 array
    float const v = (x + 1.0f) / 2.0f * 255.0f;
    if (std::isnan(v)) return 0;
    if (v <= 0.0f) return 0;
    if (v >= 255.0f) return 255;
    return static_cast<uint8_t>(v);  // truncation toward zero, as astype(uint8)
}

Image8 imageFromTensor(void const* chw, DType dtype, int channels, int height, int width) {
    if (channels != 1 && channels != 3)
        throw Error("the image tensor has " + std::to_string(channels) +
                    " channels; a PNG needs 3 (RGB) or 1 (grayscale)");
    if (dtype != DType::kFloat32 && dtype != DType::kFloat16)
        throw Error(std::string("the image tensor is ") + dtypeName(dtype) + "; expected float32 or float16");
    Image8 img;
    img.width = width;
    img.height = height;
    img.channels = channels;
    size_t const plane = static_cast<size_t>(width) * height;
    img.pixels.resize(plane * channels);
    for (int c = 0; c < channels; ++c) {
        for (size_t i = 0; i < plane; ++i) {
            size_t const src = static_cast<size_t>(c) * plane + i;
            float const x = dtype == DType::kFloat32 ? static_cast<float const*>(chw)[src]
                                                     : halfToFloat(static_cast<uint16_t const*>(chw)[src]);
            if (std::isnan(x)) ++img.nanCount;
            img.pixels[i * channels + c] = imageValueToUint8(x);
        }
    }
    return img;
}

}  // namespace app
}  // namespace asap
