// Index arithmetic of ASAP-Net's spatially-varying MLP, shared by the CUDA kernels and the CPU
// reference build. It mirrors asap_deploy/mlp_spec.py (the single source of truth) and is
// checked against it, and against the PyTorch model, by tests/test_kernel_reference.py.
//
// Parameter grid: params[b][p][cy][cx], p in [0, num_params). Per layer: bias (c_out values),
// then the weight block, c_in-major: W[i][o] at weight_offset + i * c_out + o; y = x W + b.
// MLP input channels: in_channels label channels, then 4 per encoding period f = S, S/2, .., 2:
// cos/sin of 2 pi (x mod f) / f, then cos/sin of 2 pi (y mod f) / f (raw pixel indices).
#pragma once

#include <cmath>
#include <cstdint>

#include "spatial_mlp_api.h"

#if defined(__CUDACC__)
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

// Field meanings: spatial_mlp_api.h (one C struct, so ctypes and the plugin share it).
using MLPShape = AsapMLPShape;

ASAP_HD int pe_channels(MLPShape const& s) { return 4 * s.num_frequencies; }

ASAP_HD int layer_in(MLPShape const& s, int l) {
    return l == 0 ? s.in_channels + pe_channels(s) : s.hidden_width;
}

ASAP_HD int layer_out(MLPShape const& s, int l) {
    return l == s.depth - 1 ? s.out_channels : s.hidden_width;
}

ASAP_HD int bias_offset(MLPShape const& s, int l) {
    int off = 0;
    for (int k = 0; k < l; ++k) off += (layer_in(s, k) + 1) * layer_out(s, k);
    return off;
}

ASAP_HD int weight_offset(MLPShape const& s, int l) { return bias_offset(s, l) + layer_out(s, l); }

ASAP_HD int num_params(MLPShape const& s) { return bias_offset(s, s.depth); }

ASAP_HD bool shape_is_valid(MLPShape const& s) {
    return s.in_channels > 0 && s.hidden_width > 0 && s.depth >= 2 && s.out_channels > 0 &&
           s.downsampling >= 2 && (s.downsampling & (s.downsampling - 1)) == 0 &&
           (1 << s.num_frequencies) == s.downsampling &&
           (s.input_mode == kInputOneHot || s.input_mode == kInputLabelIds);
}

// Encoding channel `ch` for a pixel at offset (dy, dx) inside its tile. Periods divide S and tiles
// start at multiples of S, so the in-tile offset gives the same value as the image coordinate.
// Same float32 arithmetic as the authors: (2 pi * r) / f with r = coordinate mod f.
ASAP_HD float pe_value(MLPShape const& s, int ch, int dy, int dx) {
    int const f = s.downsampling >> (ch / 4);
    int const kind = ch % 4;
    int const r = (kind < 2 ? dx : dy) % f;
    float const angle = (kTwoPi * static_cast<float>(r)) / static_cast<float>(f);
    return (kind % 2 == 0) ? cosf(angle) : sinf(angle);
}

// Class id -> one-hot channel, or -1 when it has none (the authors map 255 to label_nc).
ASAP_HD int class_channel(MLPShape const& s, int id) {
    int const c = id == kDontCareId ? s.label_nc : id;
    return (c >= 0 && c < s.in_channels) ? c : -1;
}

ASAP_HD int64_t params_index(int b, int p, int cy, int cx, int np, int gh, int gw) {
    return ((static_cast<int64_t>(b) * np + p) * gh + cy) * gw + cx;
}

ASAP_HD int64_t pixel_index(int b, int c, int y, int x, int channels, int h, int w) {
    return ((static_cast<int64_t>(b) * channels + c) * h + y) * w + x;
}

ASAP_HD float leaky_relu(float v) { return v > 0.f ? v : v * kLeakySlope; }

// The whole per-pixel MLP in float, for one pixel: the generic kernel's body and the CPU
// reference. `w(p)` returns parameter p of this pixel's cell; `label(c)` label channel c
// (one-hot mode) and `class_id()` the pixel's id (label_ids mode). MAXW bounds the widths.
template <int MAXW, class Weights, class Input>
ASAP_HD void mlp_pixel(MLPShape const& s, Weights const& w, Input const& in, int dy, int dx,
                       float* out) {
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

// -- tensor-core path: shared-memory plan (host side; the CPU build exports it for tests) ------
constexpr int kHW = 64;        // hidden width this path is specialised for
constexpr int kTile = 16;      // pixels per warp step (WMMA M)
constexpr int kOutPad = 16;    // last layer N, padded
constexpr int kWarps = 4;
constexpr int kAlign = 128;

ASAP_HD constexpr int round_up(int v, int m) { return (v + m - 1) / m * m; }

struct FastLayout {  // byte offsets into dynamic shared memory
    int k0;          // layer-0 K handled by MMA: in+pe (one-hot) or pe (label ids), padded to 16
    int kmax;        // activation tile width
    int w0, w0_labels, w_hidden, w_last, bias, pe_table, stage, act, total;
};

inline FastLayout fast_layout(MLPShape const& s) {
    FastLayout L{};
    int const pe = pe_channels(s);
    bool const ids = s.input_mode == kInputLabelIds;
    L.k0 = round_up(ids ? pe : s.in_channels + pe, 16);
    L.kmax = L.k0 > kHW ? L.k0 : kHW;
    int off = 0;
    auto take = [&off](int bytes) { int at = off; off = round_up(off + bytes, kAlign); return at; };
    L.w0 = take(L.k0 * kHW * 2);
    L.w0_labels = take(ids ? s.in_channels * kHW * 2 : 0);
    L.w_hidden = take((s.depth - 2) * kHW * kHW * 2);
    L.w_last = take(kHW * kOutPad * 2);
    L.bias = take(((s.depth - 1) * kHW + kOutPad) * 4);
    L.pe_table = take(s.num_frequencies * s.downsampling * 2 * 4);
    L.stage = take(kWarps * kTile * kHW * 4);
    L.act = take(kWarps * kTile * L.kmax * 2);
    L.total = off;
    return L;
}

}  // namespace asap
