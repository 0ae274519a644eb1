// CUDA-on-CPU emulation: what nvcc implicitly gives a .cu file (keywords, built-in variables,
// vector types, barriers), for the host compiler. Force-included before the kernel source
// (g++ -include emu/core.h), so the kernel file compiles unmodified.
//
// Execution model (runtime.cpp): blocks run one after another; the threads of a block are OS
// threads running concurrently; __syncthreads and __syncwarp are real barriers. Anything the
// hardware would refuse or leave undefined that the emulator can see aborts with a message.
#pragma once

#define ASAP_EMULATION 1

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cstdint>
#include <cstring>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __shared__
#define __constant__
#define __restrict__ __restrict
#define __align__(n) __attribute__((aligned(n)))
// Launch bounds are read from the kernel source by the build (emulation/launch_bounds.py) and
// registered with the runtime, which checks every launch against them.
#define __launch_bounds__(...)

struct uint3 {
    unsigned x, y, z;
};

struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
};

namespace emu {
// Trace build: one 8- or 16-byte access, whatever the host compiler splits the copy into (the
// GPU loads and stores vector types whole; bank conflicts depend on the width).
void vector_copy(void* dst, void const* src, unsigned bytes);
}  // namespace emu

#ifdef ASAP_EMU_TRACE
#define ASAP_EMU_VECTOR_COPY(T)                              \
    T() = default;                                           \
    T(T const& o) { emu::vector_copy(this, &o, sizeof(T)); } \
    T& operator=(T const& o) {                               \
        emu::vector_copy(this, &o, sizeof(T));               \
        return *this;                                        \
    }
#define ASAP_EMU_VECTOR2(T, E)  \
    T(E a, E b) : x(a), y(b) {} \
    ASAP_EMU_VECTOR_COPY(T)
#define ASAP_EMU_VECTOR4(T, E)                        \
    T(E a, E b, E c, E d) : x(a), y(b), z(c), w(d) {} \
    ASAP_EMU_VECTOR_COPY(T)
#else
#define ASAP_EMU_VECTOR2(T, E)
#define ASAP_EMU_VECTOR4(T, E)
#endif

struct __attribute__((aligned(8))) float2 {
    float x, y;
    ASAP_EMU_VECTOR2(float2, float)
};
struct __attribute__((aligned(16))) float4 {
    float x, y, z, w;
    ASAP_EMU_VECTOR4(float4, float)
};
struct __attribute__((aligned(8))) int2 {
    int x, y;
    ASAP_EMU_VECTOR2(int2, int)
};
struct __attribute__((aligned(16))) int4 {
    int x, y, z, w;
    ASAP_EMU_VECTOR4(int4, int)
};
struct __attribute__((aligned(8))) uint2 {
    unsigned x, y;
    ASAP_EMU_VECTOR2(uint2, unsigned)
};
struct __attribute__((aligned(16))) uint4 {
    unsigned x, y, z, w;
    ASAP_EMU_VECTOR4(uint4, unsigned)
};

inline float2 make_float2(float x, float y) { return float2{x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return uint4{x, y, z, w}; }
inline int4 make_int4(int x, int y, int z, int w) { return int4{x, y, z, w}; }

extern thread_local uint3 threadIdx;
extern thread_local uint3 blockIdx;
extern thread_local dim3 blockDim;
extern thread_local dim3 gridDim;
constexpr int warpSize = 32;

void __syncthreads();
void __syncwarp(unsigned mask = 0xffffffffu);

template <class T>
inline T __ldg(T const* p) {
    return *p;
}

namespace emu {
// Identity of the calling emulated thread (aborts when called outside a kernel).
int lane();
int warp();
bool in_shared(void const* p, size_t bytes);
[[noreturn]] void fatal(char const* fmt, ...) __attribute__((format(printf, 1, 2)));
}  // namespace emu
