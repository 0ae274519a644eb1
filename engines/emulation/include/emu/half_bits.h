// IEEE binary16 conversions in plain C++ (no CUDA types), shared by the emulator's __half and by
// the case runner, which also builds against the real CUDA runtime.
#pragma once

#include <cstdint>
#include <cstring>

namespace emu {

inline uint32_t float_bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}

inline float bits_float(uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

inline uint16_t float_to_half_rn(float f) {
    uint32_t const u = float_bits(f);
    uint32_t const sign = (u >> 16) & 0x8000u;
    uint32_t const exp = (u >> 23) & 0xffu;
    uint32_t mant = u & 0x7fffffu;
    if (exp == 0xff) return static_cast<uint16_t>(sign | 0x7c00u | (mant ? 0x200u | (mant >> 13) : 0u));
    int const e = static_cast<int>(exp) - 127 + 15;
    if (e >= 31) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow: inf
    if (e <= 0) {                                               // subnormal half (or zero)
        if (e < -10) return static_cast<uint16_t>(sign);
        mant |= 0x800000u;
        int const shift = 14 - e;  // 24-bit significand -> 10 - (1 - e) bits
        uint32_t const half_mant = mant >> shift;
        uint32_t const rem = mant & ((1u << shift) - 1u), halfway = 1u << (shift - 1);
        uint32_t r = half_mant;
        if (rem > halfway || (rem == halfway && (half_mant & 1u))) ++r;
        return static_cast<uint16_t>(sign | r);
    }
    uint32_t h = sign | (static_cast<uint32_t>(e) << 10) | (mant >> 13);
    uint32_t const rem = mant & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // may carry into the exponent: ok
    return static_cast<uint16_t>(h);
}

inline float half_to_float(uint16_t h) {
    uint32_t const sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    uint32_t const exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (exp == 0x1f) return bits_float(sign | 0x7f800000u | (mant << 13));
    if (exp == 0) {
        if (mant == 0) return bits_float(sign);
        int e = -1;
        do {
            ++e;
            mant <<= 1;
        } while (!(mant & 0x400u));
        return bits_float(sign | static_cast<uint32_t>(127 - 15 - e) << 23 | (mant & 0x3ffu) << 13);
    }
    return bits_float(sign | (exp + 127 - 15) << 23 | mant << 13);
}

}  // namespace emu
