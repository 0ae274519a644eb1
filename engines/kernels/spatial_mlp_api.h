/* C interface of the fused spatially-varying MLP (ASAP_SpatialMLP), shared by the TensorRT
 * plugin, the Python plugin, the ctypes binding and the CPU emulation build. Plain C so that
 * ctypes can mirror it (asap_deploy/fused_mlp.py). */
#ifndef ASAP_SPATIAL_MLP_API_H
#define ASAP_SPATIAL_MLP_API_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The MLP, from the ONNX node's attributes (asap_deploy/mlp_spec.py is the source of truth). */
typedef struct AsapMLPShape {
    int32_t in_channels; /* label channels the MLP reads (first channels of input 0) */
    int32_t hidden_width;
    int32_t depth; /* linear layers */
    int32_t out_channels;
    int32_t downsampling;    /* S */
    int32_t num_frequencies; /* log2(S) */
    int32_t label_nc;        /* label_ids mode: id 255 reads as label_nc */
    int32_t input_mode;      /* 0: one-hot float input, 1: int32 class ids */
} AsapMLPShape;

enum AsapDType { ASAP_FLOAT32 = 0, ASAP_FLOAT16 = 1, ASAP_INT32 = 2 };

/* Memory order of the parameter grid. NCHW is what the ONNX graph computes; NHWC keeps a
 * cell's parameters contiguous (what the kernels stage fastest), as TensorRT's kHWC8/kHWC
 * formats and PyTorch's channels_last tensors hold them. */
enum AsapParamsLayout { ASAP_PARAMS_NCHW = 0, ASAP_PARAMS_NHWC = 1 };

/* The tensors of one call. Dimensions are in logical NCHW order whatever the memory layout;
 * -1 marks a dimension only known at run time (TensorRT at build time): the validator checks
 * what is known, the forward functions need everything. */
typedef struct AsapMLPTensors {
    int64_t input_dims[4];  /* B, C, H, W of input 0 (label ids: C = 1) */
    int64_t params_dims[4]; /* B, NP, H/S, W/S */
    int32_t input_dtype;    /* one-hot: the params' float type; label ids: ASAP_INT32 */
    int32_t params_dtype;   /* ASAP_FLOAT32 or ASAP_FLOAT16; the output has this type */
    int32_t params_layout;  /* enum AsapParamsLayout */
    int32_t params_pitch;   /* NHWC: elements from one cell to the next (>= NP; kHWC8 pads NP to
                               a multiple of 8); 0 means NP. Ignored for NCHW. */
} AsapMLPTensors;

enum AsapStatus {
    ASAP_OK = 0,
    ASAP_ERR_SHAPE = 1,  /* invalid MLP attributes, or widths above what the kernels support */
    ASAP_ERR_DIMS = 2,   /* tensor dimensions disagree with the attributes or with each other */
    ASAP_ERR_DTYPE = 3,  /* unsupported or inconsistent data types */
    ASAP_ERR_LAYOUT = 4, /* unknown params layout or a pitch below NP */
    ASAP_ERR_CUDA = 5    /* the launch failed: asap_last_error() has CUDA's reason */
};

/* The one shape check: the C++ plugin, the Python plugin, the ctypes binding and the forward
 * functions all call it. Returns ASAP_OK or the first violated rule's status, and leaves a
 * message naming the tensors and values in asap_last_error(). The rules are listed, as
 * expressions, in engines/plugin/spatialMLPPlugin/spatialMLPPlugin.json. */
int asap_spatial_mlp_validate(const AsapMLPShape* shape, const AsapMLPTensors* tensors);

/* Run the MLP stage on `stream` (asynchronous, graph-capturable: no allocation, no sync).
 * input  : one-hot mode: (B, C, H, W) of the params' type, C >= in_channels (extra channels are
 *          ignored); label ids mode: (B, 1, H, W) int32 (255 reads as label_nc; other ids
 *          without a channel contribute nothing).
 * params : (B, NP, H/S, W/S) in `params_layout`. output: (B, out_channels, H, W) NCHW.
 * FP16 with hidden_width 64, out_channels <= 16 and S >= 16 runs on tensor cores (FP32
 * accumulation) where its shared memory fits the device; everything else runs the generic
 * kernel (FP32 arithmetic). The emulation build takes host pointers and a NULL stream. */
int asap_spatial_mlp_forward(const AsapMLPShape* shape, const AsapMLPTensors* tensors, const void* input,
                             const void* params, void* output, void* stream);

/* 1 when (shape, params dtype) takes the tensor-core path on the current device, else 0. */
int asap_spatial_mlp_uses_tensor_cores(const AsapMLPShape* shape, int params_dtype);

enum AsapKernelPath {
    ASAP_PATH_TENSOR_CORES = 0,   /* FP16 WMMA kernel */
    ASAP_PATH_GENERIC_SHARED = 1, /* generic kernel, the cell's weights staged in shared memory */
    ASAP_PATH_GENERIC_GLOBAL = 2  /* generic kernel reading weights from the grid (too big) */
};
/* The kernel asap_spatial_mlp_forward runs for this call on the current device (an
 * AsapKernelPath), or -status when the call is invalid. */
int asap_spatial_mlp_path(const AsapMLPShape* shape, const AsapMLPTensors* tensors);

/* Same computation on the CPU, float32 only (reference build, no CUDA needed). */
int asap_spatial_mlp_forward_cpu(const AsapMLPShape* shape, const AsapMLPTensors* tensors, const void* input,
                                 const float* params, float* output);

/* Layout queries (the reference build exports them so tests compare them with MLPSpec). */
int asap_mlp_num_params(const AsapMLPShape* shape);
int asap_mlp_bias_offset(const AsapMLPShape* shape, int layer);
int asap_mlp_weight_offset(const AsapMLPShape* shape, int layer);
float asap_mlp_pe_value(const AsapMLPShape* shape, int channel, int dy, int dx);
/* Dynamic shared memory the tensor-core kernel needs per block (it runs where this fits the
 * device's opt-in limit: 64 KiB on sm_75, 227 KiB on sm_90). */
int asap_tensor_core_smem_bytes(const AsapMLPShape* shape);

const char* asap_status_string(int status);
/* Detail of the last non-OK status returned to this thread (names the values involved). */
const char* asap_last_error(void);

#ifdef __cplusplus
}
#endif

#endif
