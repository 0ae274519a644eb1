// Index arithmetic of ASAP-Net's spatially-varying MLP, shared by the CUDA kernels, the CPU
// reference and the emulation build. It mirrors asap_deploy/mlp_spec.py (the single source of
// truth) and is checked against it, and against the PyTorch model, by
// tests/test_kernel_reference.py.
//
// Parameter grid: params[b][p][cy][cx], p in [0, num_params), stored NCHW or NHWC (ParamsView).
// Per layer: bias (c_out values), then the weight block, c_in-major: W[i][o] at
// weight_offset + i * c_out + o; y = x W + b.
// MLP input channels: in_channels label channels, then 4 per encoding period f = S, S/2, .., 2:
// cos/sin of 2 pi (x mod f) / f, then cos/sin of 2 pi (y mod f) / f (raw pixel indices).
#pragma once

#include <cmath>
#include <cstdint>

#include "spatial_mlp_api.h"

#if defined(__CUDACC__) || defined(ASAP_EMULATION)
#define ASAP_HD __host__ __device__ __forceinline__
#else
#define ASAP_HD inline
#endif

namespace asap {

constexpr float kLeakySlope = 0.01f;
constexpr float kTwoPi = 6.283185307179586f;  // Python's 2 * math.pi rounded to float32
constexpr int kInputOneHot = 0;
constexpr int kInputLabelIds = 1;
constexpr int kDontCareId = 255;
constexpr float kHalfMax = 65504.f;  // largest finite FP16: hidden activations saturate here

// Field meanings: spatial_mlp_api.h (one C struct, so ctypes and the plugin share it).
using MLPShape = AsapMLPShape;

ASAP_HD int pe_channels(MLPShape const& s) { return 4 * s.num_frequencies; }

ASAP_HD int layer_in(MLPShape const& s, int l) { return l == 0 ? s.in_channels + pe_channels(s) : s.hidden_width; }

ASAP_HD int layer_out(MLPShape const& s, int l) { return l == s.depth - 1 ? s.out_channels : s.hidden_width; }

ASAP_HD int bias_offset(MLPShape const& s, int l) {
    int off = 0;
    for (int k = 0; k < l; ++k) off += (layer_in(s, k) + 1) * layer_out(s, k);
    return off;
}

ASAP_HD int weight_offset(MLPShape const& s, int l) { return bias_offset(s, l) + layer_out(s, l); }

ASAP_HD int num_params(MLPShape const& s) { return bias_offset(s, s.depth); }

ASAP_HD bool shape_is_valid(MLPShape const& s) {
    return s.in_channels > 0 && s.hidden_width > 0 && s.depth >= 2 && s.out_channels > 0 && s.num_frequencies >= 1 &&
           s.num_frequencies <= 16 && s.downsampling == (1 << s.num_frequencies) &&
           (s.input_mode == kInputOneHot || s.input_mode == kInputLabelIds);
}

// Encoding channel `ch` for a pixel at offset (dy, dx) inside its tile. Periods divide S and
// tiles start at multiples of S, so the in-tile offset gives the same value as the image
// coordinate. Same float32 arithmetic as the authors: (2 pi * r) / f with r = coordinate mod f.
ASAP_HD float pe_angle(int f, int coord) { return (kTwoPi * static_cast<float>(coord % f)) / static_cast<float>(f); }

ASAP_HD float pe_value(MLPShape const& s, int ch, int dy, int dx) {
    int const f = s.downsampling >> (ch / 4);
    int const kind = ch % 4;
    float const angle = pe_angle(f, kind < 2 ? dx : dy);
    return (kind % 2 == 0) ? cosf(angle) : sinf(angle);
}

// The encoding needs cos/sin of 2 pi r / f only for r < f: one row per (f, r), periods
// S, S/2, .., 2 back to back, 2S - 2 rows in all (instead of log2(S) * S).
ASAP_HD int pe_table_rows(MLPShape const& s) { return 2 * s.downsampling - 2; }
ASAP_HD int pe_table_row(MLPShape const& s, int frequency, int coord) {
    int const f = s.downsampling >> frequency;
    return 2 * s.downsampling - 2 * f + coord % f;
}

// Class id -> one-hot channel, or -1 when it has none (the authors map 255 to label_nc).
ASAP_HD int class_channel(MLPShape const& s, int id) {
    int const c = id == kDontCareId ? s.label_nc : id;
    return (c >= 0 && c < s.in_channels) ? c : -1;
}

ASAP_HD int64_t pixel_index(int b, int c, int y, int x, int channels, int h, int w) {
    return ((static_cast<int64_t>(b) * channels + c) * h + y) * w + x;
}

// Where parameter p of cell (b, cy, cx) lives, for either memory order: element
// b * batch + cy * row + cx * cell + p * channel.
struct ParamsView {
    int64_t batch, row, cell, channel;

    ASAP_HD int64_t cell_base(int b, int cy, int cx) const { return b * batch + cy * row + cx * cell; }
};

inline ParamsView params_view(int layout, int64_t np, int64_t pitch, int64_t gh, int64_t gw) {
    if (layout == ASAP_PARAMS_NHWC) {
        int64_t const p = pitch > 0 ? pitch : np;
        return ParamsView{gh * gw * p, gw * p, p, 1};
    }
    return ParamsView{np * gh * gw, gw, 1, gh * gw};
}

ASAP_HD float leaky_relu(float v) { return v > 0.f ? v : v * kLeakySlope; }

// The whole per-pixel MLP in float, for one pixel: the CPU reference. `w(p)` returns parameter
// p of this pixel's cell; `label(c)` label channel c (one-hot mode) and `class_id()` the
// pixel's id (label_ids mode). MAXW bounds the widths.
template <int MAXW, class Weights, class Input>
ASAP_HD void mlp_pixel(MLPShape const& s, Weights const& w, Input const& in, int dy, int dx, float* out) {
    float a[MAXW];
    float z[MAXW];
    int c_out = layer_out(s, 0);
    int wo = weight_offset(s, 0);
    for (int o = 0; o < c_out; ++o) z[o] = w(bias_offset(s, 0) + o);
    if (s.input_mode == kInputLabelIds) {
        int const c = class_channel(s, in.class_id());
        if (c >= 0)
            for (int o = 0; o < c_out; ++o) z[o] += w(wo + c * c_out + o);
    } else {
        for (int i = 0; i < s.in_channels; ++i) {
            float const v = in.label(i);
            if (v != 0.f)  // one-hot input: skipping exact zeros changes nothing
                for (int o = 0; o < c_out; ++o) z[o] += v * w(wo + i * c_out + o);
        }
    }
    for (int p = 0; p < pe_channels(s); ++p) {
        float const v = pe_value(s, p, dy, dx);
        int const row = wo + (s.in_channels + p) * c_out;
        for (int o = 0; o < c_out; ++o) z[o] += v * w(row + o);
    }
    for (int l = 1; l < s.depth; ++l) {
        int const c_in = c_out;
        for (int i = 0; i < c_in; ++i) a[i] = leaky_relu(z[i]);
        c_out = layer_out(s, l);
        wo = weight_offset(s, l);
        for (int o = 0; o < c_out; ++o) z[o] = w(bias_offset(s, l) + o);
        for (int i = 0; i < c_in; ++i)
            for (int o = 0; o < c_out; ++o) z[o] += a[i] * w(wo + i * c_out + o);
    }
    for (int o = 0; o < c_out; ++o) out[o] = tanhf(z[o]);
}

ASAP_HD constexpr int round_up(int v, int m) { return (v + m - 1) / m * m; }

// -- tensor-core path ------------------------------------------------------------------------
// Work split: 4 warps per block, one block per (image, grid cell). Each warp takes kStep = 32
// pixels of the cell at a time (two 16-row MMA tiles), so every weight fragment read from
// shared memory feeds two MMAs. Activations live in a per-warp FP16 tile; between layers the
// FP32 accumulators pass through a per-warp 16 x 16 stage where bias, leaky ReLU and the
// saturated FP16 cast happen.
//
// Bank discipline: FP16 tiles 64 wide use a row pitch of kHW + kSkew halves (144 bytes), so the
// eight 16-byte rows of every 8x8 ldmatrix phase fall on different banks; the FP32 stage uses
// a pitch of 24 floats (96 bytes), which makes the 8-byte accumulator stores and the epilogue's
// reads conflict-free; the last layer's weights are stored transposed (column-major B, pitch
// kLd) for the same reason. A pitch of 16 * odd bytes is what makes 8 rows x 16 bytes hit 8
// different bank groups; tests/test_kernel_reference.py checks every pitch, and the emulator's
// access report (python -m asap_deploy.kernel_report) measures the conflicts.
constexpr int kHW = 64;      // hidden width this path is specialised for
constexpr int kMma = 16;     // WMMA M = N = K
constexpr int kStep = 32;    // pixels per warp step
constexpr int kOutPad = 16;  // last layer N, padded
constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kSkew = 8;  // halves added to every 64-wide FP16 row
constexpr int kLd = kHW + kSkew;
constexpr int kStageLd = kMma + 8;  // floats
// The last layer's 16 x 16 result is stored column-major with this pitch: its lanes store
// single floats, and read it back a column (one output channel along 16 pixels) at a time.
constexpr int kOutStageLd = kMma + 4;
constexpr int kAlign = 128;
constexpr int kMaxPrefetch = 40;  // label channels a lane prefetches into registers

struct FastLayout {  // byte offsets into dynamic shared memory
    int k0;          // layer-0 K handled by MMA: in+pe (one-hot) or pe (label ids), padded to 16
    int act_ld;      // activation tile pitch in halves: max(k0, 64) + kSkew
    int w0, w0_labels, w_hidden, w_last, bias, pe_table, act, stage, total;
};

ASAP_HD FastLayout fast_layout(MLPShape const& s) {
    FastLayout L{};
    int const pe = pe_channels(s);
    bool const ids = s.input_mode == kInputLabelIds;
    L.k0 = round_up(ids ? pe : s.in_channels + pe, kMma);
    L.act_ld = (L.k0 > kHW ? L.k0 : kHW) + kSkew;
    int off = 0;
    auto take = [&off](int bytes) {
        int const at = off;
        off = round_up(off + bytes, kAlign);
        return at;
    };
    L.w0 = take(L.k0 * kLd * 2);
    L.w0_labels = take(ids ? s.in_channels * kLd * 2 : 0);
    L.w_hidden = take((s.depth - 2) * kHW * kLd * 2);
    L.w_last = take(kOutPad * kLd * 2);
    L.bias = take(((s.depth - 1) * kHW + kOutPad) * 2);
    L.pe_table = take(pe_table_rows(s) * 2 * 2);
    L.act = take(kWarps * kStep * L.act_ld * 2);
    L.stage = take(kWarps * kMma * kStageLd * 4);
    L.total = off;
    return L;
}

ASAP_HD bool fast_path_applies(MLPShape const& s, int dtype) {
    return dtype == ASAP_FLOAT16 && s.hidden_width == kHW && s.out_channels <= kOutPad && s.downsampling >= kMma;
}

// -- generic path ----------------------------------------------------------------------------
// Any widths up to 256, FP32 or FP16 I/O, FP32 arithmetic. Lanes own output channels (lane +
// 32 * slot), each warp sweeps kGenericRegs / slots pixels at a time, so a thread's
// accumulators are a compile-time register array; a warp's activations sit in shared memory
// as [channel][pixel] floats, read as broadcasts.
constexpr int kGenericWarps = 4;
constexpr int kGenericThreads = kGenericWarps * 32;
constexpr int kGenericRegs = 64;  // accumulators per thread: slots * pixels
constexpr int kGenericMaxWidth = 256;

ASAP_HD int generic_slots(MLPShape const& s) {
    int const widest = s.hidden_width > s.out_channels ? s.hidden_width : s.out_channels;
    return widest <= 32 ? 1 : widest <= 64 ? 2 : widest <= 128 ? 4 : 8;
}

// Per-warp activation tile: slots * 32 channels x (kGenericRegs / slots) pixels of floats.
ASAP_HD int generic_act_bytes() { return 32 * kGenericRegs * 4; }

}  // namespace asap
