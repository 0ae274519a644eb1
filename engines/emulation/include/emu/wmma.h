// nvcuda::wmma for m16n16k16 with __half inputs and float (or __half) accumulators.
//
// Every lane holds whole A and B tiles (the hardware spreads them over the warp, which is not
// observable), but an accumulator holds only the lane's 8 elements, placed as sm_80+ mma.sync
// places them (row = lane / 4 + 8 * (i / 2 % 2), column = 2 * (lane % 4) + i % 2 + 8 * (i / 4)),
// so a store writes only the lane's share and a missing __syncwarp before reading another
// lane's share is a real race (TSan reports it). Products are exact, sums are FP32.
//
// Enforced as the hardware requires (abort with a message otherwise): the pointer is 256-bit
// aligned, ldm is a multiple of 16 bytes and at least the tile's row length.
// The trace build records each load/store as the warp-level shared-memory requests the hardware
// issues (ldmatrix phases for A/B, 8-byte accesses for accumulators).
#pragma once

#include <cstdint>
#include <type_traits>

#include "core.h"
#include "half.h"

namespace emu {
struct LaneAccess {
    uintptr_t addr;
    uint32_t size;  // 0: lane inactive
};
bool tracing();
// A warp-level request made of one access per lane (`n` lanes), recorded once per warp.
void trace_warp_request(bool store, LaneAccess const* lanes, int n);
void check_wmma_pointer(void const* p, unsigned ldm_bytes, unsigned row_bytes, char const* what);
// While alive, the calling thread's own memory accesses are not traced: the element-wise loops
// below stand for warp-level requests that are traced as such.
struct Untraced {
    Untraced();
    ~Untraced();
};
}  // namespace emu

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment;

template <class T, class Layout>
struct fragment<matrix_a, 16, 16, 16, T, Layout> {
    static_assert(sizeof(T) == 2, "the emulator models FP16 A fragments");
    static constexpr int num_elements = 256;
    T x[256];  // x[row * 16 + k]
};

template <class T, class Layout>
struct fragment<matrix_b, 16, 16, 16, T, Layout> {
    static_assert(sizeof(T) == 2, "the emulator models FP16 B fragments");
    static constexpr int num_elements = 256;
    T x[256];  // x[k * 16 + col]
};

template <class T>
struct fragment<accumulator, 16, 16, 16, T, void> {
    static constexpr int num_elements = 8;
    T x[8];
};

namespace detail {

inline int acc_row(int lane, int i) { return lane / 4 + 8 * ((i / 2) % 2); }
inline int acc_col(int lane, int i) { return 2 * (lane % 4) + (i % 2) + 8 * (i / 4); }

// ldmatrix.x4: four phases of eight 16-byte rows; the tile's 16 memory rows (32 bytes each)
// are read as rows 0-7 / 8-15, first then second 16-byte half.
template <class T>
void trace_ldmatrix(T const* p, unsigned ldm, bool store) {
    if (!emu::tracing() || emu::lane() != 0) return;
    for (int phase = 0; phase < 4; ++phase) {
        emu::LaneAccess acc[8];
        for (int r = 0; r < 8; ++r) {
            int const row = (phase % 2) * 8 + r, col = (phase / 2) * 8;
            acc[r] = {reinterpret_cast<uintptr_t>(p + row * ldm + col), 16};
        }
        emu::trace_warp_request(store, acc, 8);
    }
}

// Accumulator traffic: row-major, four 8-byte accesses per lane (element pairs 2q, 2q + 1);
// column-major, eight 4-byte accesses (the pair is not contiguous).
template <class T>
void trace_accumulator(T const* p, unsigned ldm, layout_t layout, bool store) {
    if (!emu::tracing() || emu::lane() != 0) return;
    bool const row = layout == mem_row_major;
    for (int q = 0; q < (row ? 4 : 8); ++q) {
        emu::LaneAccess acc[32];
        for (int l = 0; l < 32; ++l) {
            int const i = row ? 2 * q : q, r = acc_row(l, i), c = acc_col(l, i);
            long const off = row ? r * static_cast<long>(ldm) + c : c * static_cast<long>(ldm) + r;
            acc[l] = {reinterpret_cast<uintptr_t>(p + off), static_cast<uint32_t>((row ? 2 : 1) * sizeof(T))};
        }
        emu::trace_warp_request(store, acc, 32);
    }
}

}  // namespace detail

template <class T, class Layout>
void load_matrix_sync(fragment<matrix_a, 16, 16, 16, T, Layout>& a, T const* p, unsigned ldm) {
    emu::Untraced const untraced;
    emu::check_wmma_pointer(p, ldm * sizeof(T), 16 * sizeof(T), "load_matrix_sync(matrix_a)");
    constexpr bool row = std::is_same<Layout, row_major>::value;
    for (int r = 0; r < 16; ++r)
        for (int k = 0; k < 16; ++k) a.x[r * 16 + k] = row ? p[r * ldm + k] : p[k * ldm + r];
    detail::trace_ldmatrix(p, ldm, false);
}

template <class T, class Layout>
void load_matrix_sync(fragment<matrix_b, 16, 16, 16, T, Layout>& b, T const* p, unsigned ldm) {
    emu::Untraced const untraced;
    emu::check_wmma_pointer(p, ldm * sizeof(T), 16 * sizeof(T), "load_matrix_sync(matrix_b)");
    constexpr bool row = std::is_same<Layout, row_major>::value;
    for (int k = 0; k < 16; ++k)
        for (int c = 0; c < 16; ++c) b.x[k * 16 + c] = row ? p[k * ldm + c] : p[c * ldm + k];
    detail::trace_ldmatrix(p, ldm, false);
}

template <class T>
void load_matrix_sync(fragment<accumulator, 16, 16, 16, T>& c, T const* p, unsigned ldm, layout_t layout) {
    emu::Untraced const untraced;
    emu::check_wmma_pointer(p, ldm * sizeof(T), 16 * sizeof(T), "load_matrix_sync(accumulator)");
    int const lane = emu::lane();
    for (int i = 0; i < 8; ++i) {
        int const r = detail::acc_row(lane, i), col = detail::acc_col(lane, i);
        c.x[i] = layout == mem_row_major ? p[r * ldm + col] : p[col * ldm + r];
    }
    detail::trace_accumulator(p, ldm, layout, false);
}

template <class T>
void store_matrix_sync(T* p, fragment<accumulator, 16, 16, 16, T> const& c, unsigned ldm, layout_t layout) {
    emu::Untraced const untraced;
    emu::check_wmma_pointer(p, ldm * sizeof(T), 16 * sizeof(T), "store_matrix_sync");
    int const lane = emu::lane();
    for (int i = 0; i < 8; ++i) {
        int const r = detail::acc_row(lane, i), col = detail::acc_col(lane, i);
        (layout == mem_row_major ? p[r * ldm + col] : p[col * ldm + r]) = c.x[i];
    }
    detail::trace_accumulator(p, ldm, layout, true);
}

template <class Use, class T, class Layout, class V>
void fill_fragment(fragment<Use, 16, 16, 16, T, Layout>& f, V const& v) {
    for (int i = 0; i < f.num_elements; ++i) f.x[i] = T(static_cast<float>(v));
}

template <class La, class Lb, class Tc>
void mma_sync(fragment<accumulator, 16, 16, 16, Tc>& d, fragment<matrix_a, 16, 16, 16, __half, La> const& a,
              fragment<matrix_b, 16, 16, 16, __half, Lb> const& b, fragment<accumulator, 16, 16, 16, Tc> const& c) {
    int const lane = emu::lane();
    Tc out[8];
    for (int i = 0; i < 8; ++i) {
        int const r = detail::acc_row(lane, i), col = detail::acc_col(lane, i);
        float sum = static_cast<float>(c.x[i]);
        for (int k = 0; k < 16; ++k) sum += float(a.x[r * 16 + k]) * float(b.x[k * 16 + col]);
        out[i] = Tc(sum);
    }
    for (int i = 0; i < 8; ++i) d.x[i] = out[i];
}

}  // namespace wmma
}  // namespace nvcuda
