// __half / __half2 with IEEE binary16 semantics: float -> half rounds to nearest even (overflow
// to inf, subnormals, NaN kept), half -> float is exact, arithmetic rounds each result once.
#pragma once

#include "core.h"

#include "half_bits.h"

struct __half {
    uint16_t __x;
    __half() = default;
    __half(float f) : __x(emu::float_to_half_rn(f)) {}  // NOLINT: CUDA's conversion is implicit
    __half(double d) : __half(static_cast<float>(d)) {}
    __half(int i) : __half(static_cast<float>(i)) {}
    operator float() const { return emu::half_to_float(__x); }
};

struct __attribute__((aligned(4))) __half2 {
    __half x, y;
};

using half = __half;
using half2 = __half2;

inline __half __float2half(float f) { return __half(f); }
inline __half __float2half_rn(float f) { return __half(f); }
inline float __half2float(__half h) { return emu::half_to_float(h.__x); }
inline __half2 __halves2half2(__half lo, __half hi) { return {lo, hi}; }
inline __half2 __floats2half2_rn(float lo, float hi) { return {__half(lo), __half(hi)}; }
inline __half2 __float2half2_rn(float f) { return {__half(f), __half(f)}; }
inline float2 __half22float2(__half2 h) { return {__half2float(h.x), __half2float(h.y)}; }
inline __half __low2half(__half2 h) { return h.x; }
inline __half __high2half(__half2 h) { return h.y; }
inline float __low2float(__half2 h) { return __half2float(h.x); }
inline float __high2float(__half2 h) { return __half2float(h.y); }
inline __half __hadd(__half a, __half b) { return __half(float(a) + float(b)); }
inline __half __hmul(__half a, __half b) { return __half(float(a) * float(b)); }
inline __half __hfma(__half a, __half b, __half c) {
    return __half(static_cast<float>(static_cast<double>(float(a)) * float(b) + float(c)));
}
