// Fused ASAP-Net pixelwise MLP: one thread block per (batch, grid cell). The cell's MLP weights are
// staged once in shared memory; every pixel of the S x S tile runs all layers without touching
// global memory between layers, and the positional encoding is computed in the kernel.
//
// Two paths:
//  * tensor-core path (FP16 I/O, hidden width 64, out_channels <= 16): each warp takes 16 pixels at
//    a time through WMMA 16x16x16 MMAs with FP32 accumulation; activations round-trip a per-warp
//    shared-memory tile between layers (bias, leaky ReLU and the FP16 cast happen there).
//  * generic path (FP32 or FP16 I/O, any widths up to 256): one thread per pixel, the shared
//    header's mlp_pixel() in FP32 - the same code the CPU reference build runs.
#include "spatial_mlp_api.h"
#include "spatial_mlp_layout.h"

#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <atomic>

namespace asap {
namespace {

struct KernelArgs {
    MLPShape s;
    void const* input;
    int input_channels;
    void const* params;
    void* output;
    int height, width, gh, gw, np;
};

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
template <class T> __device__ __forceinline__ T from_float(float v);
template <> __device__ __forceinline__ float from_float<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }

// ---------------------------------------------------------------------------------------------
// Generic path
// ---------------------------------------------------------------------------------------------
struct SmemWeights {
    float const* w;
    __device__ float operator()(int p) const { return w[p]; }
};

template <class T>
struct GlobalWeights {  // when a cell's weights do not fit in shared memory
    T const* base;
    int64_t stride;
    __device__ float operator()(int p) const { return to_float(base[p * stride]); }
};

template <class T>
struct PixelInput {
    KernelArgs const* a;
    int b, y, x;
    __device__ float label(int c) const {
        return to_float(static_cast<T const*>(a->input)[pixel_index(b, c, y, x, a->input_channels, a->height, a->width)]);
    }
    __device__ int class_id() const {
        return static_cast<int32_t const*>(a->input)[pixel_index(b, 0, y, x, 1, a->height, a->width)];
    }
};

template <class T, int MAXW, bool kSmem>
__global__ void __launch_bounds__(256) generic_kernel(KernelArgs a) {
    extern __shared__ float smem_w[];
    int const cy = blockIdx.x / a.gw, cx = blockIdx.x % a.gw, b = blockIdx.y;
    int const S = a.s.downsampling;
    int64_t const stride = static_cast<int64_t>(a.gh) * a.gw;
    T const* cell = static_cast<T const*>(a.params) + params_index(b, 0, cy, cx, a.np, a.gh, a.gw);
    if (kSmem) {
        for (int p = threadIdx.x; p < a.np; p += blockDim.x) smem_w[p] = to_float(cell[p * stride]);
        __syncthreads();
    }
    T* out = static_cast<T*>(a.output);
    float res[MAXW];
    for (int pix = threadIdx.x; pix < S * S; pix += blockDim.x) {
        int const dy = pix / S, dx = pix % S, y = cy * S + dy, x = cx * S + dx;
        PixelInput<T> in{&a, b, y, x};
        if (kSmem)
            mlp_pixel<MAXW>(a.s, SmemWeights{smem_w}, in, dy, dx, res);
        else
            mlp_pixel<MAXW>(a.s, GlobalWeights<T>{cell, stride}, in, dy, dx, res);
        for (int o = 0; o < a.s.out_channels; ++o)
            out[pixel_index(b, o, y, x, a.s.out_channels, a.height, a.width)] = from_float<T>(res[o]);
    }
}

// ---------------------------------------------------------------------------------------------
// Tensor-core path (FP16, hidden width 64)
// ---------------------------------------------------------------------------------------------
inline bool fast_path_applies(MLPShape const& s, int dtype) {
    return dtype == ASAP_FLOAT16 && s.hidden_width == kHW && s.out_channels <= kOutPad &&
           s.downsampling >= kTile;
}

__global__ void __launch_bounds__(kWarps * 32) tensor_core_kernel(KernelArgs a, FastLayout L) {
    using namespace nvcuda;
    extern __shared__ __align__(kAlign) unsigned char smem[];
    MLPShape const& s = a.s;
    __half* W0 = reinterpret_cast<__half*>(smem + L.w0);
    __half* W0l = reinterpret_cast<__half*>(smem + L.w0_labels);
    __half* Wh = reinterpret_cast<__half*>(smem + L.w_hidden);
    __half* Wl = reinterpret_cast<__half*>(smem + L.w_last);
    float* bias = reinterpret_cast<float*>(smem + L.bias);
    float* pe_tab = reinterpret_cast<float*>(smem + L.pe_table);

    int const cy = blockIdx.x / a.gw, cx = blockIdx.x % a.gw, b = blockIdx.y;
    int const S = s.downsampling, pe = pe_channels(s), nt = blockDim.x;
    bool const ids = s.input_mode == kInputLabelIds;
    int64_t const stride = static_cast<int64_t>(a.gh) * a.gw;
    __half const* P = static_cast<__half const*>(a.params) + params_index(b, 0, cy, cx, a.np, a.gh, a.gw);
    auto prm = [&](int p) { return P[p * stride]; };

    // -- stage this cell's MLP in shared memory (zero padding where MMA tiles overhang) --------
    int const wo0 = weight_offset(s, 0);
    for (int i = threadIdx.x; i < L.k0 * kHW; i += nt) {
        int const r = i / kHW, o = i % kHW;
        int const row = ids ? s.in_channels + r : r;
        bool const valid = ids ? r < pe : r < s.in_channels + pe;
        W0[i] = valid ? prm(wo0 + row * kHW + o) : __float2half(0.f);
    }
    if (ids)
        for (int i = threadIdx.x; i < s.in_channels * kHW; i += nt) W0l[i] = prm(wo0 + i);
    for (int l = 1; l < s.depth - 1; ++l) {
        int const wo = weight_offset(s, l);
        for (int i = threadIdx.x; i < kHW * kHW; i += nt) Wh[(l - 1) * kHW * kHW + i] = prm(wo + i);
    }
    int const last = s.depth - 1, wol = weight_offset(s, last);
    for (int i = threadIdx.x; i < kHW * kOutPad; i += nt) {
        int const r = i / kOutPad, o = i % kOutPad;
        Wl[i] = o < s.out_channels ? prm(wol + r * s.out_channels + o) : __float2half(0.f);
    }
    for (int i = threadIdx.x; i < last * kHW + kOutPad; i += nt) {
        int const l = i / kHW < last ? i / kHW : last, o = i - l * kHW;
        bias[i] = (l < last || o < s.out_channels) ? __half2float(prm(bias_offset(s, l) + o)) : 0.f;
    }
    for (int i = threadIdx.x; i < s.num_frequencies * S; i += nt) {
        int const f = S >> (i / S), r = (i % S) % f;
        float const angle = (kTwoPi * static_cast<float>(r)) / static_cast<float>(f);
        pe_tab[2 * i] = cosf(angle);
        pe_tab[2 * i + 1] = sinf(angle);
    }
    __syncthreads();

    // -- each warp: 16 pixels of one tile row at a time ----------------------------------------
    int const warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    float* stage = reinterpret_cast<float*>(smem + L.stage) + warp * kTile * kHW;
    __half* act = reinterpret_cast<__half*>(smem + L.act) + warp * kTile * L.kmax;
    __half const* label = static_cast<__half const*>(a.input);
    int32_t const* idmap = static_cast<int32_t const*>(a.input);
    __half* out = static_cast<__half*>(a.output);
    // encoding channel k for in-tile column dx / row dy, from the per-period table
    auto pe_at = [&](int k, int dy, int dx) {
        int const kind = k % 4, coord = kind < 2 ? dx : dy;
        return pe_tab[2 * ((k / 4) * S + coord) + (kind % 2)];
    };

    using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major>;
    using FragB = wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::row_major>;
    using FragC = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;

    for (int t = warp; t < S * S / kTile; t += kWarps) {
        int const p0 = t * kTile, dy = p0 / S, dx0 = p0 % S;
        int const y = cy * S + dy, x0 = cx * S + dx0;

        // layer-0 MMA operand: [labels | encoding | 0] (one-hot) or [encoding | 0] (ids)
        for (int i = lane; i < kTile * L.k0; i += 32) {
            int const px = i % kTile, k = i / kTile;  // lanes sweep pixels: coalesced label reads
            float v = 0.f;
            if (!ids && k < s.in_channels)
                v = __half2float(label[pixel_index(b, k, y, x0 + px, a.input_channels, a.height, a.width)]);
            else if (k - (ids ? 0 : s.in_channels) < pe)
                v = pe_at(k - (ids ? 0 : s.in_channels), dy, dx0 + px);
            act[px * L.k0 + k] = __float2half(v);
        }
        if (ids)  // the one-hot product is a row gather: start the accumulator at b0 + W0[id]
            for (int i = lane; i < kTile * kHW; i += 32) {
                int const px = i / kHW, o = i % kHW;
                int const c = class_channel(s, idmap[pixel_index(b, 0, y, x0 + px, 1, a.height, a.width)]);
                stage[i] = bias[o] + (c >= 0 ? __half2float(W0l[c * kHW + o]) : 0.f);
            }
        __syncwarp();

        FragC acc[kHW / 16];
        FragA fa;
        FragB fb;
        for (int n = 0; n < kHW / 16; ++n) {
            if (ids) wmma::load_matrix_sync(acc[n], stage + n * 16, kHW, wmma::mem_row_major);
            else wmma::fill_fragment(acc[n], 0.f);
        }
        for (int k = 0; k < L.k0; k += 16) {
            wmma::load_matrix_sync(fa, act + k, L.k0);
            for (int n = 0; n < kHW / 16; ++n) {
                wmma::load_matrix_sync(fb, W0 + k * kHW + n * 16, kHW);
                wmma::mma_sync(acc[n], fa, fb, acc[n]);
            }
        }
        float const* layer_bias = ids ? nullptr : bias;  // ids: b0 is already in the accumulator

        for (int l = 1; l <= last; ++l) {
            // accumulator -> stage -> (+bias, leaky ReLU, FP16) -> act
            __syncwarp();
            for (int n = 0; n < kHW / 16; ++n)
                wmma::store_matrix_sync(stage + n * 16, acc[n], kHW, wmma::mem_row_major);
            __syncwarp();
            for (int i = lane; i < kTile * kHW; i += 32) {
                float v = stage[i] + (layer_bias ? layer_bias[i % kHW] : 0.f);
                act[i] = __float2half(leaky_relu(v));
            }
            __syncwarp();
            if (l < last) {
                __half const* W = Wh + (l - 1) * kHW * kHW;
                for (int n = 0; n < kHW / 16; ++n) wmma::fill_fragment(acc[n], 0.f);
                for (int k = 0; k < kHW; k += 16) {
                    wmma::load_matrix_sync(fa, act + k, kHW);
                    for (int n = 0; n < kHW / 16; ++n) {
                        wmma::load_matrix_sync(fb, W + k * kHW + n * 16, kHW);
                        wmma::mma_sync(acc[n], fa, fb, acc[n]);
                    }
                }
                layer_bias = bias + l * kHW;
            }
        }

        // last layer: 64 -> out_channels (padded to 16), tanh, write FP16
        FragC acc_out;
        wmma::fill_fragment(acc_out, 0.f);
        for (int k = 0; k < kHW; k += 16) {
            wmma::load_matrix_sync(fa, act + k, kHW);
            wmma::load_matrix_sync(fb, Wl + k * kOutPad, kOutPad);
            wmma::mma_sync(acc_out, fa, fb, acc_out);
        }
        wmma::store_matrix_sync(stage, acc_out, kOutPad, wmma::mem_row_major);
        __syncwarp();
        for (int i = lane; i < kTile * s.out_channels; i += 32) {
            int const px = i % kTile, o = i / kTile;  // lanes sweep pixels: coalesced writes
            float const v = tanhf(stage[px * kOutPad + o] + bias[last * kHW + o]);
            out[pixel_index(b, o, y, x0 + px, s.out_channels, a.height, a.width)] = __float2half(v);
        }
        __syncwarp();
    }
}

// ---------------------------------------------------------------------------------------------
// Host side
// ---------------------------------------------------------------------------------------------
constexpr int kMaxDevices = 64;

int current_device() {
    int dev = 0;
    return cudaGetDevice(&dev) == cudaSuccess && dev >= 0 && dev < kMaxDevices ? dev : 0;
}

int max_smem_optin() {
    static std::atomic<int> cached[kMaxDevices] = {};
    int const dev = current_device();
    int bytes = cached[dev].load(std::memory_order_relaxed);
    if (bytes == 0) {
        if (cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) != cudaSuccess)
            bytes = 48 * 1024;
        cached[dev].store(bytes, std::memory_order_relaxed);
    }
    return bytes;
}

// Raise a kernel's dynamic shared-memory limit once per device (and only upwards), so that
// steady-state launches - including those inside CUDA-graph capture - make no attribute calls.
template <auto kernel>  // one grant record per kernel (not per kernel signature)
bool allow_smem(int bytes) {
    if (bytes <= 48 * 1024) return true;
    static std::atomic<int> granted[kMaxDevices] = {};
    int const dev = current_device();
    if (granted[dev].load(std::memory_order_relaxed) >= bytes) return true;
    if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes) != cudaSuccess)
        return false;
    granted[dev].store(bytes, std::memory_order_relaxed);
    return true;
}

template <class T, int MAXW>
int launch_generic(KernelArgs const& a, dim3 grid, cudaStream_t stream) {
    int const bytes = a.np * static_cast<int>(sizeof(float));
    if (bytes <= max_smem_optin() && allow_smem<generic_kernel<T, MAXW, true>>(bytes)) {
        generic_kernel<T, MAXW, true><<<grid, 256, bytes, stream>>>(a);
    } else {
        generic_kernel<T, MAXW, false><<<grid, 256, 0, stream>>>(a);
    }
    return cudaGetLastError() == cudaSuccess ? ASAP_OK : ASAP_ERR_CUDA;
}

template <class T>
int dispatch_generic(KernelArgs const& a, dim3 grid, cudaStream_t stream) {
    int const widest = a.s.hidden_width > a.s.out_channels ? a.s.hidden_width : a.s.out_channels;
    if (widest <= 64) return launch_generic<T, 64>(a, grid, stream);
    if (widest <= 256) return launch_generic<T, 256>(a, grid, stream);
    return ASAP_ERR_SHAPE;
}

bool tensor_cores_usable(MLPShape const& s, int dtype) {
    return fast_path_applies(s, dtype) && fast_layout(s).total <= max_smem_optin();
}

}  // namespace
}  // namespace asap

extern "C" int asap_spatial_mlp_uses_tensor_cores(const AsapMLPShape* shape, int dtype) {
    return asap::shape_is_valid(*shape) && asap::tensor_cores_usable(*shape, dtype) ? 1 : 0;
}

extern "C" int asap_spatial_mlp_forward(const AsapMLPShape* shape, int dtype, const void* input,
                                        int input_channels, const void* params, void* output,
                                        int batch, int height, int width, void* stream_ptr) {
    using namespace asap;
    MLPShape const& s = *shape;
    if (!shape_is_valid(s)) return ASAP_ERR_SHAPE;
    if (dtype != ASAP_FLOAT32 && dtype != ASAP_FLOAT16) return ASAP_ERR_DTYPE;
    int const S = s.downsampling;
    if (batch <= 0 || height <= 0 || width <= 0 || height % S || width % S) return ASAP_ERR_RESOLUTION;
    if (s.input_mode == kInputOneHot && input_channels < s.in_channels) return ASAP_ERR_RESOLUTION;
    KernelArgs a{s, input, input_channels, params, output, height, width, height / S, width / S,
                 num_params(s)};
    if (static_cast<int64_t>(a.gh) * a.gw > 0x7fffffff || batch > 65535) return ASAP_ERR_RESOLUTION;
    dim3 const grid(a.gh * a.gw, batch);
    cudaStream_t const stream = static_cast<cudaStream_t>(stream_ptr);
    if (tensor_cores_usable(s, dtype)) {
        FastLayout const L = fast_layout(s);
        if (allow_smem<tensor_core_kernel>(L.total)) {
            tensor_core_kernel<<<grid, kWarps * 32, L.total, stream>>>(a, L);
            return cudaGetLastError() == cudaSuccess ? ASAP_OK : ASAP_ERR_CUDA;
        }
    }
    return dtype == ASAP_FLOAT16 ? dispatch_generic<__half>(a, grid, stream)
                                 : dispatch_generic<float>(a, grid, stream);
}
