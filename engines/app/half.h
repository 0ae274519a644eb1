// IEEE 754 binary16 <-> binary32 on the host, without CUDA: the label tensor of an FP16 graph is
// written and its image read here. float -> half rounds to nearest even, as __float2half does.
#pragma once

#include <cstdint>
#include <cstring>

namespace asap {
namespace app {

inline float halfToFloat(uint16_t h) {
    uint32_t const sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    uint32_t exponent = (h >> 10) & 0x1fu;
    uint32_t mantissa = h & 0x3ffu;
    uint32_t bits;
    if (exponent == 0x1f) {  // inf / NaN (payload kept)
        bits = sign | 0x7f800000u | (mantissa << 13);
    } else if (exponent != 0) {
        bits = sign | ((exponent + 112u) << 23) | (mantissa << 13);
    } else if (mantissa == 0) {
        bits = sign;
    } else {  // subnormal half: normalise
        exponent = 113;
        while (!(mantissa & 0x400u)) {
            mantissa <<= 1;
            --exponent;
        }
        bits = sign | (exponent << 23) | ((mantissa & 0x3ffu) << 13);
    }
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}

inline uint16_t floatToHalf(float f) {
    uint32_t bits;
    std::memcpy(&bits, &f, sizeof bits);
    uint16_t const sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
    uint32_t const absBits = bits & 0x7fffffffu;
    if (absBits >= 0x7f800000u)  // inf, or NaN kept quiet
        return sign | (absBits > 0x7f800000u ? 0x7e00u : 0x7c00u);
    if (absBits >= 0x477ff000u) return sign | 0x7c00u;  // rounds to >= 65520: overflow to inf
    if (absBits < 0x38800000u) {                        // below the smallest normal half
        if (absBits < 0x33000000u) return sign;         // below half the smallest subnormal
        uint32_t const exponent = absBits >> 23;
        uint32_t const mantissa = (absBits & 0x7fffffu) | 0x800000u;
        uint32_t const shift = 126u - exponent;  // 14..24 bits dropped
        uint32_t half = mantissa >> shift;
        uint32_t const rest = mantissa & ((1u << shift) - 1u);
        uint32_t const midpoint = 1u << (shift - 1u);
        if (rest > midpoint || (rest == midpoint && (half & 1u))) ++half;
        return sign | static_cast<uint16_t>(half);
    }
    uint32_t half = ((absBits >> 13) - (112u << 10));
    uint32_t const rest = absBits & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) ++half;  // may carry into the exponent
    return sign | static_cast<uint16_t>(half);
}

}  // namespace app
}  // namespace asap
