/* C interface of the fused spatially-varying MLP (ASAP_SpatialMLP), for the TensorRT plugin,
 * the Python plugin and the ctypes test binding. Plain C so that ctypes can mirror it. */
#ifndef ASAP_SPATIAL_MLP_API_H
#define ASAP_SPATIAL_MLP_API_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct AsapMLPShape {
    int32_t in_channels;      /* label channels the MLP reads (first channels of input 0) */
    int32_t hidden_width;
    int32_t depth;            /* linear layers */
    int32_t out_channels;
    int32_t downsampling;     /* S */
    int32_t num_frequencies;  /* log2(S) */
    int32_t label_nc;         /* label_ids mode: id 255 reads as label_nc */
    int32_t input_mode;       /* 0: one-hot float input, 1: int32 class ids */
} AsapMLPShape;

enum AsapDType { ASAP_FLOAT32 = 0, ASAP_FLOAT16 = 1 };

enum AsapStatus {
    ASAP_OK = 0,
    ASAP_ERR_SHAPE = 1,       /* invalid MLP attributes, or widths above what the kernels support */
    ASAP_ERR_RESOLUTION = 2,  /* H or W not a positive multiple of S, or input channels too few */
    ASAP_ERR_DTYPE = 3,
    ASAP_ERR_CUDA = 4         /* launch failed: see cudaGetLastError() */
};

/* Run the MLP stage on `stream` (asynchronous, graph-capturable: no allocation, no sync).
 * input  : one-hot mode: (B, input_channels, H, W) of `dtype`, input_channels >= in_channels;
 *          label_ids mode: (B, 1, H, W) int32.
 * params : (B, num_params, H/S, W/S) of `dtype`.  output: (B, out_channels, H, W) of `dtype`.
 * FP16 with hidden_width 64 and out_channels <= 16 runs on tensor cores (FP32 accumulation). */
int asap_spatial_mlp_forward(const AsapMLPShape* shape, int dtype, const void* input,
                             int input_channels, const void* params, void* output, int batch,
                             int height, int width, void* stream);

/* 1 when (shape, dtype) takes the tensor-core path on the current device, else 0. */
int asap_spatial_mlp_uses_tensor_cores(const AsapMLPShape* shape, int dtype);

/* Same computation on the CPU, float32 only (reference build, no CUDA needed). */
int asap_spatial_mlp_forward_cpu(const AsapMLPShape* shape, const void* input, int input_channels,
                                 const float* params, float* output, int batch, int height,
                                 int width);

/* Layout queries (the reference build exports them so tests compare them with MLPSpec). */
int asap_mlp_num_params(const AsapMLPShape* shape);
int asap_mlp_bias_offset(const AsapMLPShape* shape, int layer);
int asap_mlp_weight_offset(const AsapMLPShape* shape, int layer);
float asap_mlp_pe_value(const AsapMLPShape* shape, int channel, int dy, int dx);
/* Dynamic shared memory the tensor-core kernel needs per block (it runs where this fits the
 * device's opt-in limit: 64 KiB on sm_75, 227 KiB on sm_90). */
int asap_tensor_core_smem_bytes(const AsapMLPShape* shape);

const char* asap_status_string(int status);

#ifdef __cplusplus
}
#endif

#endif
