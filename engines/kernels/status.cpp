#include "spatial_mlp_api.h"

extern "C" const char* asap_status_string(int status) {
    switch (status) {
        case ASAP_OK: return "ok";
        case ASAP_ERR_SHAPE: return "invalid MLP attributes (depth >= 2, S a power of two = 2^num_frequencies, widths within the kernel's limits)";
        case ASAP_ERR_RESOLUTION: return "H and W must be positive multiples of S, and the one-hot input must have at least in_channels channels";
        case ASAP_ERR_DTYPE: return "unsupported data type (float32 or float16; int32 ids in label_ids mode)";
        case ASAP_ERR_CUDA: return "CUDA launch failed (see cudaGetLastError)";
        default: return "unknown status";
    }
}
