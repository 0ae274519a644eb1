// Fused ASAP-Net pixelwise MLP: one thread block per (image, grid cell). The cell's MLP weights
// are staged once in shared memory; every pixel of the S x S tile runs all layers without
// touching global memory between layers, and the positional encoding is computed in the kernel.
//
// Two paths (design and measured access figures: engines/README.md):
//  * tensor-core path (FP16, hidden width 64, out_channels <= 16, S >= 16): WMMA 16x16x16 with
//    FP32 accumulation; each warp sweeps 32 pixels per step so every weight fragment feeds two
//    MMAs; bank-conflict-free pitches (spatial_mlp_layout.h); the cell's parameters arrive with
//    16-byte cp.async copies when the grid is channels-last.
//  * generic path (FP32 or FP16 I/O, widths up to 256, FP32 arithmetic): lanes own output
//    channels, accumulators are compile-time register arrays (no local memory).
//
// This file is also compiled, unmodified, for the CPU by the emulation build (engines/emulation,
// `python -m asap_deploy.build_plugin --emulate`), which is how CI runs it: launches therefore
// go through cudaLaunchKernelEx and the dynamic shared memory is one file-scope symbol.
#include "spatial_mlp_api.h"
#include "spatial_mlp_layout.h"

#include <cuda_fp16.h>
#include <cuda_pipeline.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <utility>

// Dynamic shared memory of every kernel in this file (file scope: the emulation build binds
// this name to its per-block buffer).
extern __shared__ __align__(128) unsigned char asap_smem[];

namespace asap {

// Defined in spatial_mlp_validate.cpp (host code shared by every build).
int validate(MLPShape const& s, AsapMLPTensors const& t);
int fail(int status, char const* fmt, ...);

namespace {

struct KernelArgs {
    MLPShape s;
    void const* input;
    int input_channels;
    void const* params;
    ParamsView pv;
    bool params_vec16;  // channels-last with 16-byte aligned cells: 16-byte copies
    void* output;
    int height, width, gh, gw, np;
};

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
template <class T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) {
    return v;
}
// Saturating: a hidden activation above 65504 becomes 65504, not inf (and then NaN). NaN stays
// NaN (the comparisons are false).
template <>
__device__ __forceinline__ __half from_float<__half>(float v) {
    v = v > kHalfMax ? kHalfMax : (v < -kHalfMax ? -kHalfMax : v);
    return __float2half_rn(v);
}

// ---------------------------------------------------------------------------------------------
// Tensor-core path
// ---------------------------------------------------------------------------------------------
// Copies `rows` rows of 64 consecutive parameters (row r starts at parameter src + 64 r) into
// shared rows of pitch `ld` halves: 16-byte cp.async when the cell is contiguous and aligned
// (a warp then reads 512 contiguous bytes per request), element by element otherwise.
__device__ void stage_rows(KernelArgs const& a, __half const* cell, int src, int rows, __half* dst, int ld) {
    if (a.params_vec16) {
        for (int i = threadIdx.x; i < rows * 8; i += blockDim.x) {
            int const r = i / 8, c = (i % 8) * 8;
            __pipeline_memcpy_async(dst + r * ld + c, cell + src + r * kHW + c, 16);
        }
    } else {
        int64_t const st = a.pv.channel;
        for (int i = threadIdx.x; i < rows * kHW; i += blockDim.x) {
            int const r = i / kHW, c = i % kHW;
            dst[r * ld + c] = cell[(src + r * kHW + c) * st];
        }
    }
}

__device__ void zero_rows(__half* dst, int rows, int ld) {
    for (int i = threadIdx.x; i < rows * kHW; i += blockDim.x) dst[(i / kHW) * ld + i % kHW] = __float2half(0.f);
}

__global__ void __launch_bounds__(kThreads) tensor_core_kernel(KernelArgs a, FastLayout L) {
    using namespace nvcuda;
    MLPShape const& s = a.s;
    __half* W0 = reinterpret_cast<__half*>(asap_smem + L.w0);              // k0 x kLd
    __half* W0l = reinterpret_cast<__half*>(asap_smem + L.w0_labels);      // in x kLd (label ids)
    __half* Wh = reinterpret_cast<__half*>(asap_smem + L.w_hidden);        // (depth-2) x 64 x kLd
    __half* Wl = reinterpret_cast<__half*>(asap_smem + L.w_last);          // 16 x kLd, column-major B
    __half* bias = reinterpret_cast<__half*>(asap_smem + L.bias);          // (depth-1) x 64, then 16
    __half2* pe_tab = reinterpret_cast<__half2*>(asap_smem + L.pe_table);  // (cos, sin) rows

    int const cy = blockIdx.x / a.gw, cx = blockIdx.x % a.gw, b = blockIdx.y;
    int const S = s.downsampling, pe = pe_channels(s), in = s.in_channels, last = s.depth - 1;
    bool const ids = s.input_mode == kInputLabelIds;
    __half const* cell = static_cast<__half const*>(a.params) + a.pv.cell_base(b, cy, cx);
    int64_t const st = a.pv.channel;

    // -- stage this cell's MLP (zero padding where MMA tiles overhang) ------------------------
    int const wo0 = weight_offset(s, 0);
    if (ids) {
        stage_rows(a, cell, wo0 + in * kHW, pe, W0, kLd);
        stage_rows(a, cell, wo0, in, W0l, kLd);  // skewed too: rows are gathered by class
        zero_rows(W0 + pe * kLd, L.k0 - pe, kLd);
    } else {
        stage_rows(a, cell, wo0, in + pe, W0, kLd);
        zero_rows(W0 + (in + pe) * kLd, L.k0 - in - pe, kLd);
    }
    for (int l = 1; l < last; ++l) stage_rows(a, cell, weight_offset(s, l), kHW, Wh + (l - 1) * kHW * kLd, kLd);
    for (int l = 0; l < last; ++l) stage_rows(a, cell, bias_offset(s, l), 1, bias + l * kHW, kHW);
    __pipeline_commit();
    // Overlapped with the copies in flight: the last layer (3 outputs a row: not 16-byte
    // chunks), transposed for conflict-free B loads, and the encoding table.
    int const wol = weight_offset(s, last), bol = bias_offset(s, last), oc = s.out_channels;
    for (int i = threadIdx.x; i < kOutPad * kHW; i += blockDim.x) {
        int const o = i / kHW, k = i % kHW;
        Wl[o * kLd + k] = o < oc ? cell[(wol + k * oc + o) * st] : __float2half(0.f);
    }
    for (int o = threadIdx.x; o < kOutPad; o += blockDim.x)
        bias[last * kHW + o] = o < oc ? cell[(bol + o) * st] : __float2half(0.f);
    for (int row = threadIdx.x; row < pe_table_rows(s); row += blockDim.x) {
        int f = S;
        while (row >= 2 * S - f) f >>= 1;  // rows [2S - 2f, 2S - f) belong to period f
        float const angle = pe_angle(f, row - (2 * S - 2 * f));
        pe_tab[row] = __floats2half2_rn(cosf(angle), sinf(angle));
    }
    __pipeline_wait_prior(0);
    __syncthreads();

    // -- each warp: 32 pixels of the tile at a time ---------------------------------------------
    int const warp = threadIdx.x / 32, lane = threadIdx.x % 32, ld = L.act_ld;
    __half* act = reinterpret_cast<__half*>(asap_smem + L.act) + warp * kStep * ld;
    float* stage = reinterpret_cast<float*>(asap_smem + L.stage) + warp * kMma * kStageLd;
    __half const* label = static_cast<__half const*>(a.input);
    int32_t const* idmap = static_cast<int32_t const*>(a.input);
    __half* out = static_cast<__half*>(a.output);
    int const steps = S * S / kStep;
    // The label-id path keeps each pixel's class channel in its activation row's skew halves,
    // which no MMA reads (columns >= max(k0, 64)).
    int const cls_col = ld - kSkew;

    // Lane `lane` owns pixel `lane` of a step while loading: its labels (or id) are fetched one
    // step ahead, into registers, so the global loads overlap the previous step's MMAs.
    __half2 pre[kMaxPrefetch / 2];  // channel pairs (2c, 2c + 1)
    int pre_id = 0;
    auto fetch = [&](int t) {
        int const p = t * kStep + lane, y = cy * S + p / S, x = cx * S + p % S;
        if (ids) {
            pre_id = idmap[pixel_index(b, 0, y, x, 1, a.height, a.width)];
        } else {
            auto at = [&](int c) {
                return c < in ? label[pixel_index(b, c, y, x, a.input_channels, a.height, a.width)] : __float2half(0.f);
            };
#pragma unroll
            for (int c = 0; c < kMaxPrefetch; c += 2)
                if (c < in) pre[c / 2] = __halves2half2(at(c), at(c + 1));
        }
    };
    // Layer-0 operand value of channel k (>= the prefetched ones) for pixel (dy, dx).
    auto operand = [&](int k, int y, int x, int dy, int dx) -> __half {
        int const e = ids ? k : k - in;  // encoding channel
        if (!ids && k < in) return label[pixel_index(b, k, y, x, a.input_channels, a.height, a.width)];
        if (e < pe) {
            __half2 const cs = pe_tab[pe_table_row(s, e / 4, e % 4 < 2 ? dx : dy)];
            return e % 2 == 0 ? __low2half(cs) : __high2half(cs);
        }
        return __float2half(0.f);
    };

    using FragA = wmma::fragment<wmma::matrix_a, kMma, kMma, kMma, __half, wmma::row_major>;
    using FragB = wmma::fragment<wmma::matrix_b, kMma, kMma, kMma, __half, wmma::row_major>;
    using FragBt = wmma::fragment<wmma::matrix_b, kMma, kMma, kMma, __half, wmma::col_major>;
    using FragC = wmma::fragment<wmma::accumulator, kMma, kMma, kMma, float>;

    // FP32 accumulators -> stage -> (+ bias, leaky ReLU, saturated FP16) -> activation tile.
    // Each lane converts the elements at the positions it stored them (the accumulator layout
    // of sm_80+ mma.sync), which keeps the stage traffic conflict-free; correctness does not
    // depend on that layout.
    auto epilogue = [&](FragC(&acc)[2][kHW / kMma], __half const* layer_bias) {
        __syncwarp();  // every lane's A loads of this layer precede the overwrite of act
#pragma unroll
        for (int m = 0; m < 2; ++m)
#pragma unroll
            for (int n = 0; n < kHW / kMma; ++n) {
                wmma::store_matrix_sync(stage, acc[m][n], kStageLd, wmma::mem_row_major);
                __syncwarp();
#pragma unroll
                for (int i = 0; i < 4; ++i) {
                    int const r = lane / 4 + 8 * (i % 2), c = 2 * (lane % 4) + 8 * (i / 2);
                    float2 v = *reinterpret_cast<float2 const*>(stage + r * kStageLd + c);
                    if (layer_bias) {
                        float2 const bb = __half22float2(*reinterpret_cast<__half2 const*>(layer_bias + n * kMma + c));
                        v.x += bb.x;
                        v.y += bb.y;
                    }
                    __half2 h;
                    h.x = from_float<__half>(leaky_relu(v.x));
                    h.y = from_float<__half>(leaky_relu(v.y));
                    *reinterpret_cast<__half2*>(act + (m * kMma + r) * ld + n * kMma + c) = h;
                }
                __syncwarp();
            }
    };

    if (warp < steps) fetch(warp);
    for (int t = warp; t < steps; t += kWarps) {
        // -- layer-0 operand: [labels | encoding | 0] (one-hot) or [encoding | 0] (ids), one row
        //    per pixel, written 8 channels (16 bytes) at a time
        {
            int const p = t * kStep + lane, dy = p / S, dx = p % S, y = cy * S + dy, x = cx * S + dx;
            __half* row = act + lane * ld;
            auto pair = [&](int k) {  // channels k, k + 1 of the operand, as one 32-bit word
                __half2 const h = (!ids && k < in && k < kMaxPrefetch)
                                      ? pre[k / 2]
                                      : __halves2half2(operand(k, y, x, dy, dx), operand(k + 1, y, x, dy, dx));
                uint32_t u;
                memcpy(&u, &h, sizeof(u));
                return u;
            };
            auto pair_mixed = [&](int k) {  // k < in <= k + 1: a prefetched label, then the encoding
                __half2 h = pre[k / 2];
                h.y = operand(k + 1, y, x, dy, dx);
                uint32_t u;
                memcpy(&u, &h, sizeof(u));
                return u;
            };
#pragma unroll
            for (int kc = 0; kc < kMaxPrefetch; kc += 8) {
                if (kc < L.k0) {
                    uint32_t w[4];
#pragma unroll
                    for (int j = 0; j < 4; ++j) {
                        int const k = kc + 2 * j;
                        w[j] = (!ids && k < in && k + 1 >= in) ? pair_mixed(k) : pair(k);
                    }
                    *reinterpret_cast<uint4*>(row + kc) = make_uint4(w[0], w[1], w[2], w[3]);
                }
            }
            for (int kc = kMaxPrefetch; kc < L.k0; kc += 8) {
                uint32_t w[4];
#pragma unroll
                for (int j = 0; j < 4; ++j) w[j] = pair(kc + 2 * j);
                *reinterpret_cast<uint4*>(row + kc) = make_uint4(w[0], w[1], w[2], w[3]);
            }
            if (ids) *reinterpret_cast<int*>(row + cls_col) = class_channel(s, pre_id);
        }
        if (t + kWarps < steps) fetch(t + kWarps);
        __syncwarp();

        FragC acc[2][kHW / kMma];
        FragA fa[2];
        FragB fb;
        if (ids) {
            // the one-hot product is a row gather: start the accumulators at b0 + W0[id]
#pragma unroll
            for (int m = 0; m < 2; ++m)
#pragma unroll
                for (int n = 0; n < kHW / kMma; ++n) {
#pragma unroll
                    for (int i = 0; i < 4; ++i) {
                        int const r = lane / 4 + 8 * (i % 2), c = 2 * (lane % 4) + 8 * (i / 2);
                        int const col = n * kMma + c;
                        int const ch = *reinterpret_cast<int const*>(act + (m * kMma + r) * ld + cls_col);
                        float2 v = __half22float2(*reinterpret_cast<__half2 const*>(bias + col));
                        if (ch >= 0) {
                            float2 const w = __half22float2(*reinterpret_cast<__half2 const*>(W0l + ch * kLd + col));
                            v.x += w.x;
                            v.y += w.y;
                        }
                        *reinterpret_cast<float2*>(stage + r * kStageLd + c) = v;
                    }
                    __syncwarp();
                    wmma::load_matrix_sync(acc[m][n], stage, kStageLd, wmma::mem_row_major);
                    __syncwarp();
                }
        } else {
#pragma unroll
            for (int m = 0; m < 2; ++m)
#pragma unroll
                for (int n = 0; n < kHW / kMma; ++n) wmma::fill_fragment(acc[m][n], 0.f);
        }
#pragma unroll 1
        for (int k = 0; k < L.k0; k += kMma) {
#pragma unroll
            for (int m = 0; m < 2; ++m) wmma::load_matrix_sync(fa[m], act + m * kMma * ld + k, ld);
#pragma unroll
            for (int n = 0; n < kHW / kMma; ++n) {
                wmma::load_matrix_sync(fb, W0 + k * kLd + n * kMma, kLd);
#pragma unroll
                for (int m = 0; m < 2; ++m) wmma::mma_sync(acc[m][n], fa[m], fb, acc[m][n]);
            }
        }
        __half const* layer_bias = ids ? nullptr : bias;  // ids: b0 is already accumulated

        // -- hidden layers ---------------------------------------------------------------------
        for (int l = 1; l < last; ++l) {
            epilogue(acc, layer_bias);
            __half const* W = Wh + (l - 1) * kHW * kLd;
#pragma unroll
            for (int m = 0; m < 2; ++m)
#pragma unroll
                for (int n = 0; n < kHW / kMma; ++n) wmma::fill_fragment(acc[m][n], 0.f);
#pragma unroll 1
            for (int k = 0; k < kHW; k += kMma) {
#pragma unroll
                for (int m = 0; m < 2; ++m) wmma::load_matrix_sync(fa[m], act + m * kMma * ld + k, ld);
#pragma unroll
                for (int n = 0; n < kHW / kMma; ++n) {
                    wmma::load_matrix_sync(fb, W + k * kLd + n * kMma, kLd);
#pragma unroll
                    for (int m = 0; m < 2; ++m) wmma::mma_sync(acc[m][n], fa[m], fb, acc[m][n]);
                }
            }
            layer_bias = bias + l * kHW;
        }
        epilogue(acc, layer_bias);

        // -- last layer: 64 -> out_channels (padded to 16), tanh, FP16 stores along pixel rows -
        FragC acc_out[2];
        FragBt fbt;
#pragma unroll
        for (int m = 0; m < 2; ++m) wmma::fill_fragment(acc_out[m], 0.f);
#pragma unroll
        for (int k = 0; k < kHW; k += kMma) {
            wmma::load_matrix_sync(fbt, Wl + k, kLd);
#pragma unroll
            for (int m = 0; m < 2; ++m) {
                wmma::load_matrix_sync(fa[m], act + m * kMma * ld + k, ld);
                wmma::mma_sync(acc_out[m], fa[m], fbt, acc_out[m]);
            }
        }
        __syncwarp();
#pragma unroll
        for (int m = 0; m < 2; ++m) {
            wmma::store_matrix_sync(stage, acc_out[m], kOutStageLd, wmma::mem_col_major);
            __syncwarp();
            for (int i = lane; i < kMma * oc; i += 32) {
                int const px = i % kMma, o = i / kMma;  // lanes sweep pixels: coalesced stores
                int const p = t * kStep + m * kMma + px, y = cy * S + p / S, x = cx * S + p % S;
                float const v = tanhf(stage[o * kOutStageLd + px] + __half2float(bias[last * kHW + o]));
                out[pixel_index(b, o, y, x, oc, a.height, a.width)] = __float2half_rn(v);
            }
            __syncwarp();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Generic path
// ---------------------------------------------------------------------------------------------
template <class T, bool kSmemWeights>
struct GenericWeights {
    T const* base;  // shared copy (contiguous) or the cell in the grid
    int64_t stride;
    __device__ __forceinline__ float operator()(int p) const {
        return to_float(kSmemWeights ? base[p] : base[p * stride]);
    }
};

// Activation tile pitch (floats per channel row): pixels + 4 keeps rows 16-byte aligned for
// the broadcast float4 reads that dominate the tile's traffic.
template <int PIX>
__device__ __forceinline__ constexpr int generic_pitch() {
    return PIX + 4;
}

// z[slot][p] = the bias of output channel lane + 32 slot, for every pixel p.
template <int SLOTS, int PIX, class Weights>
__device__ __forceinline__ void init_bias(float (&z)[SLOTS][PIX], Weights const& w, int bias_at, int c_out, int lane) {
#pragma unroll
    for (int sl = 0; sl < SLOTS; ++sl) {
        float const bv = sl * 32 + lane < c_out ? w(bias_at + sl * 32 + lane) : 0.f;
#pragma unroll
        for (int p = 0; p < PIX; ++p) z[sl][p] = bv;
    }
}

// z[slot][p] += act_row[p] * W[row][lane + 32 slot]: one input channel, every pixel and output;
// the activations are broadcast float4 reads, the weights one coalesced read per slot.
template <int SLOTS, int PIX, class Weights>
__device__ __forceinline__ void accumulate(float (&z)[SLOTS][PIX], float const* act_row, Weights const& w, int row,
                                           int c_out, int lane) {
    float wv[SLOTS];
#pragma unroll
    for (int sl = 0; sl < SLOTS; ++sl) wv[sl] = sl * 32 + lane < c_out ? w(row + sl * 32 + lane) : 0.f;
#pragma unroll
    for (int p = 0; p < PIX; p += 4) {
        float4 const av = *reinterpret_cast<float4 const*>(act_row + p);
#pragma unroll
        for (int sl = 0; sl < SLOTS; ++sl) {
            z[sl][p] += av.x * wv[sl];
            z[sl][p + 1] += av.y * wv[sl];
            z[sl][p + 2] += av.z * wv[sl];
            z[sl][p + 3] += av.w * wv[sl];
        }
    }
}

// act[o][p] = f(z[slot][p]) for the lane's output channels o = lane + 32 slot < c_out.
template <int SLOTS, int PIX, int LDA, class F>
__device__ __forceinline__ void write_rows(float* act, float const (&z)[SLOTS][PIX], int c_out, int lane, F f) {
#pragma unroll
    for (int sl = 0; sl < SLOTS; ++sl)
        if (sl * 32 + lane < c_out)
#pragma unroll
            for (int p = 0; p < PIX; ++p) act[(sl * 32 + lane) * LDA + p] = f(z[sl][p]);
}

template <class T, int SLOTS, bool kSmemWeights>
__global__ void __launch_bounds__(kGenericThreads) generic_kernel(KernelArgs a, int weight_bytes) {
    constexpr int PIX = kGenericRegs / SLOTS;
    constexpr int LDA = generic_pitch<PIX>();
    MLPShape const& s = a.s;
    int const cy = blockIdx.x / a.gw, cx = blockIdx.x % a.gw, b = blockIdx.y;
    int const S = s.downsampling, in = s.in_channels, pe = pe_channels(s);
    bool const ids = s.input_mode == kInputLabelIds;
    T const* cell = static_cast<T const*>(a.params) + a.pv.cell_base(b, cy, cx);

    T* Ws = reinterpret_cast<T*>(asap_smem);
    if (kSmemWeights) {
        if (a.params_vec16) {
            int const chunks = a.np * static_cast<int>(sizeof(T)) / 16, per = 16 / static_cast<int>(sizeof(T));
            for (int i = threadIdx.x; i < chunks; i += blockDim.x)
                __pipeline_memcpy_async(Ws + i * per, cell + i * per, 16);
            for (int p = chunks * per + threadIdx.x; p < a.np; p += blockDim.x) Ws[p] = cell[p];
            __pipeline_commit();
            __pipeline_wait_prior(0);
        } else {
            for (int p = threadIdx.x; p < a.np; p += blockDim.x) Ws[p] = cell[p * a.pv.channel];
        }
        __syncthreads();
    }
    GenericWeights<T, kSmemWeights> const w{kSmemWeights ? Ws : cell, a.pv.channel};

    int const warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    float* act = reinterpret_cast<float*>(asap_smem + weight_bytes) + warp * (SLOTS * 32 * LDA);
    T const* label = static_cast<T const*>(a.input);
    int32_t const* idmap = static_cast<int32_t const*>(a.input);
    T* out = static_cast<T*>(a.output);
    int const npix = S * S;

    for (int p0 = warp * PIX; p0 < npix; p0 += blockDim.x / 32 * PIX) {
        float z[SLOTS][PIX];
        // -- layer 0 -----------------------------------------------------------------------------
        int c_out = layer_out(s, 0), wo = weight_offset(s, 0);
        init_bias(z, w, bias_offset(s, 0), c_out, lane);
        if (ids) {  // the one-hot product is a row gather
            int* cls = reinterpret_cast<int*>(act);
            for (int p = lane; p < PIX; p += 32) {
                int const q = p0 + p < npix ? p0 + p : p0;
                int const y = cy * S + q / S, x = cx * S + q % S;
                cls[p] = class_channel(s, idmap[pixel_index(b, 0, y, x, 1, a.height, a.width)]);
            }
            __syncwarp();
#pragma unroll
            for (int p = 0; p < PIX; ++p) {
                int const c = cls[p];
                if (c >= 0) {
#pragma unroll
                    for (int sl = 0; sl < SLOTS; ++sl) {
                        int const o = sl * 32 + lane;
                        if (o < c_out) z[sl][p] += w(wo + c * c_out + o);
                    }
                }
            }
            __syncwarp();
        }
        // dense input channels (labels then encoding; only the encoding for ids), in chunks
        // of the tile's capacity, staged as [channel][pixel]
        int const first = ids ? in : 0, dense = ids ? pe : in + pe;
        for (int c0 = 0; c0 < dense; c0 += SLOTS * 32) {
            int const n = dense - c0 < SLOTS * 32 ? dense - c0 : SLOTS * 32;
            for (int i = lane; i < n * PIX; i += 32) {
                int const k = i / PIX, p = i % PIX, ch = first + c0 + k;
                int const q = p0 + p < npix ? p0 + p : p0;
                int const dy = q / S, dx = q % S, y = cy * S + dy, x = cx * S + dx;
                act[k * LDA + p] = ch < in
                                       ? to_float(label[pixel_index(b, ch, y, x, a.input_channels, a.height, a.width)])
                                       : pe_value(s, ch - in, dy, dx);
            }
            __syncwarp();
            for (int k = 0; k < n; ++k) accumulate(z, act + k * LDA, w, wo + (first + c0 + k) * c_out, c_out, lane);
            __syncwarp();
        }
        // -- hidden and last layers --------------------------------------------------------------
        for (int l = 1; l < s.depth; ++l) {
            write_rows<SLOTS, PIX, LDA>(act, z, c_out, lane, [](float v) { return leaky_relu(v); });
            __syncwarp();
            int const c_in = c_out;
            c_out = layer_out(s, l);
            wo = weight_offset(s, l);
            init_bias(z, w, bias_offset(s, l), c_out, lane);
            for (int i = 0; i < c_in; ++i) accumulate(z, act + i * LDA, w, wo + i * c_out, c_out, lane);
            __syncwarp();
        }
        // -- tanh, then stores along pixel rows (lanes sweep pixels: coalesced) -------------------
        write_rows<SLOTS, PIX, LDA>(act, z, c_out, lane, [](float v) { return tanhf(v); });
        __syncwarp();
        for (int i = lane; i < c_out * PIX; i += 32) {
            int const o = i / PIX, p = i % PIX, q = p0 + p;
            if (q < npix) {
                int const y = cy * S + q / S, x = cx * S + q % S;
                out[pixel_index(b, o, y, x, c_out, a.height, a.width)] = from_float<T>(act[o * LDA + p]);
            }
        }
        __syncwarp();
    }
}

// ---------------------------------------------------------------------------------------------
// Host side
// ---------------------------------------------------------------------------------------------
std::mutex g_mutex;

// The shared memory a block may use: the device's opt-in limit, capped by
// ASAP_SPATIAL_MLP_SMEM_LIMIT (bytes) when set, so tests can make a GPU take every kernel path
// (and the emulation build lets them vary the device's own limit). Queried at each launch: a
// cheap host call.
int smem_optin(int device) {
    int bytes = 0;
    if (cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) != cudaSuccess) {
        (void)cudaGetLastError();
        bytes = 48 * 1024;
    }
    if (char const* cap = std::getenv("ASAP_SPATIAL_MLP_SMEM_LIMIT")) {
        int const limit = std::atoi(cap);
        if (limit > 0 && limit < bytes) bytes = limit;
    }
    return bytes;
}

int current_device() {
    int dev = 0;
    return cudaGetDevice(&dev) == cudaSuccess ? dev : 0;
}

// Grants above 48 KiB are recorded per (kernel, device) so that steady-state launches - those
// inside CUDA-graph capture included - make no attribute call. A grant can be lost (a device
// reset): a launch that fails is then granted again and retried once.
std::map<std::pair<void const*, int>, int>& grants() {
    static std::map<std::pair<void const*, int>, int> g;
    return g;
}

template <class Kernel>
cudaError_t grant(Kernel kernel, int device, int bytes, bool force) {
    if (bytes <= 48 * 1024) return cudaSuccess;
    std::lock_guard<std::mutex> lock(g_mutex);
    auto const key = std::make_pair(reinterpret_cast<void const*>(kernel), device);
    auto it = grants().find(key);
    if (!force && it != grants().end() && it->second >= bytes) return cudaSuccess;
    cudaError_t const err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
    if (err == cudaSuccess) grants()[key] = bytes;
    return err;
}

template <class... Params, class... Args>
int launch(void (*kernel)(Params...), char const* name, dim3 grid, dim3 block, int smem, cudaStream_t stream,
           Args... args) {
    int const dev = current_device();
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = static_cast<size_t>(smem);
    cfg.stream = stream;
    cudaError_t err = grant(kernel, dev, smem, false);
    if (err == cudaSuccess) err = cudaLaunchKernelEx(&cfg, kernel, args...);
    if (err != cudaSuccess && smem > 48 * 1024 && grant(kernel, dev, smem, true) == cudaSuccess) {
        (void)cudaGetLastError();  // the failure we just handled, not a caller's
        err = cudaLaunchKernelEx(&cfg, kernel, args...);
    }
    if (err != cudaSuccess)
        return fail(ASAP_ERR_CUDA, "launching %s (grid %ux%u, %u threads, %d bytes of shared memory): %s", name, grid.x,
                    grid.y, block.x, smem, cudaGetErrorString(err));
    return ASAP_OK;
}

bool tensor_cores_usable(MLPShape const& s, int dtype) {
    return fast_path_applies(s, dtype) && fast_layout(s).total <= smem_optin(current_device());
}

// The generic kernel's shared memory: the cell's weights with as many warps' activation tiles
// as fit, else only the tiles (weights then come from the grid: coalesced when it is
// channels-last, and cached).
struct GenericPlan {
    bool smem_weights;
    int warps, weight_bytes, bytes;
};

GenericPlan generic_plan(MLPShape const& s, int elem_bytes, int limit) {
    int const slots = generic_slots(s);
    int const weights = round_up(num_params(s) * elem_bytes, kAlign);
    int const per_warp = slots * 32 * (kGenericRegs / slots + 4) * 4;
    for (int warps = kGenericWarps; warps >= 1; warps /= 2)
        if (weights + per_warp * warps <= limit) return {true, warps, weights, weights + per_warp * warps};
    for (int warps = kGenericWarps; warps > 1; warps /= 2)
        if (per_warp * warps <= limit) return {false, warps, 0, per_warp * warps};
    return {false, 1, 0, per_warp};  // 12 KiB at most: within any GPU's 48 KiB
}

template <class T, int SLOTS>
int launch_generic(KernelArgs const& a, dim3 grid, cudaStream_t stream) {
    GenericPlan const plan = generic_plan(a.s, sizeof(T), smem_optin(current_device()));
    if (plan.smem_weights)
        return launch(generic_kernel<T, SLOTS, true>, "generic_kernel (weights in shared memory)", grid,
                      dim3(plan.warps * 32), plan.bytes, stream, a, plan.weight_bytes);
    return launch(generic_kernel<T, SLOTS, false>, "generic_kernel (weights from global memory)", grid,
                  dim3(plan.warps * 32), plan.bytes, stream, a, 0);
}

template <class T>
int dispatch_generic(KernelArgs const& a, dim3 grid, cudaStream_t stream) {
    switch (generic_slots(a.s)) {
        case 1:
            return launch_generic<T, 1>(a, grid, stream);
        case 2:
            return launch_generic<T, 2>(a, grid, stream);
        case 4:
            return launch_generic<T, 4>(a, grid, stream);
        default:
            return launch_generic<T, 8>(a, grid, stream);
    }
}

}  // namespace
}  // namespace asap

extern "C" int asap_spatial_mlp_uses_tensor_cores(const AsapMLPShape* shape, int dtype) {
    return shape && asap::shape_is_valid(*shape) && asap::tensor_cores_usable(*shape, dtype) ? 1 : 0;
}

extern "C" int asap_spatial_mlp_path(const AsapMLPShape* shape, const AsapMLPTensors* tensors) {
    using namespace asap;
    if (!shape || !tensors) return -fail(ASAP_ERR_SHAPE, "shape and tensors must not be NULL");
    int const status = validate(*shape, *tensors);
    if (status != ASAP_OK) return -status;
    if (tensor_cores_usable(*shape, tensors->params_dtype)) return ASAP_PATH_TENSOR_CORES;
    int const elem = tensors->params_dtype == ASAP_FLOAT16 ? 2 : 4;
    return generic_plan(*shape, elem, smem_optin(current_device())).smem_weights ? ASAP_PATH_GENERIC_SHARED
                                                                                 : ASAP_PATH_GENERIC_GLOBAL;
}

extern "C" int asap_spatial_mlp_forward(const AsapMLPShape* shape, const AsapMLPTensors* tensors, const void* input,
                                        const void* params, void* output, void* stream_ptr) {
    using namespace asap;
    if (!shape || !tensors) return fail(ASAP_ERR_SHAPE, "shape and tensors must not be NULL");
    int const status = validate(*shape, *tensors);
    if (status != ASAP_OK) return status;
    MLPShape const& s = *shape;
    AsapMLPTensors const& t = *tensors;
    for (int i = 0; i < 4; ++i)
        if (t.input_dims[i] < 0 || t.params_dims[i] < 0)
            return fail(ASAP_ERR_DIMS, "every dimension must be known when running (got -1)");
    int const batch = static_cast<int>(t.input_dims[0]), height = static_cast<int>(t.input_dims[2]),
              width = static_cast<int>(t.input_dims[3]), S = s.downsampling;
    int const np = num_params(s), gh = height / S, gw = width / S;
    ParamsView const pv = params_view(t.params_layout, np, t.params_pitch, gh, gw);
    int const elem = t.params_dtype == ASAP_FLOAT16 ? 2 : 4;
    bool const vec16 = t.params_layout == ASAP_PARAMS_NHWC && (pv.cell * elem) % 16 == 0 &&
                       reinterpret_cast<uintptr_t>(params) % 16 == 0;
    KernelArgs const a{s,  input, static_cast<int>(t.input_dims[1]), params, pv, vec16, output, height, width, gh,
                       gw, np};
    dim3 const grid(static_cast<unsigned>(gh * gw), static_cast<unsigned>(batch));
    cudaStream_t const stream = static_cast<cudaStream_t>(stream_ptr);
    if (tensor_cores_usable(s, t.params_dtype)) {
        FastLayout const L = fast_layout(s);
        return launch(tensor_core_kernel, "tensor_core_kernel", grid, dim3(kThreads), L.total, stream, a, L);
    }
    return t.params_dtype == ASAP_FLOAT16 ? dispatch_generic<__half>(a, grid, stream)
                                          : dispatch_generic<float>(a, grid, stream);
}
