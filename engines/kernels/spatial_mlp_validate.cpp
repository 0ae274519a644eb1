// The one shape check of the fused MLP, its status strings and the per-thread error detail.
// Host code shared by every build (CUDA library, CPU reference, emulation, TensorRT plugin).
// The rules, in this order, are listed as expressions in
// engines/plugin/spatialMLPPlugin/spatialMLPPlugin.json; tests generate a violating case for
// each from there (tests/test_kernel_validate.py).
#include "spatial_mlp_api.h"
#include "spatial_mlp_layout.h"

#include <cstdarg>
#include <cstdio>

namespace asap {

namespace {
thread_local char g_last_error[512] = "";

char const* dtype_name(int t) {
    switch (t) {
        case ASAP_FLOAT32:
            return "float32";
        case ASAP_FLOAT16:
            return "float16";
        case ASAP_INT32:
            return "int32";
        default:
            return "an unknown type";
    }
}

bool known(int64_t v) { return v >= 0; }
}  // namespace

int fail(int status, char const* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(g_last_error, sizeof(g_last_error), fmt, ap);
    va_end(ap);
    return status;
}

int validate(MLPShape const& s, AsapMLPTensors const& t) {
    // -- attributes ------------------------------------------------------------------------------
    if (s.in_channels < 1 || s.hidden_width < 1 || s.out_channels < 1)
        return fail(ASAP_ERR_SHAPE,
                    "[widths_positive] in_channels, hidden_width and out_channels must be >= 1 (got %d, %d, %d)",
                    s.in_channels, s.hidden_width, s.out_channels);
    if (s.depth < 2) return fail(ASAP_ERR_SHAPE, "[depth] depth must be >= 2 (got %d)", s.depth);
    if (s.num_frequencies < 1 || s.num_frequencies > 16 || s.downsampling != (1 << s.num_frequencies))
        return fail(
            ASAP_ERR_SHAPE,
            "[downsampling] downsampling must be 2^num_frequencies with 1 <= num_frequencies <= 16 (got %d and %d)",
            s.downsampling, s.num_frequencies);
    if (s.input_mode != kInputOneHot && s.input_mode != kInputLabelIds)
        return fail(ASAP_ERR_SHAPE, "[input_mode] input_mode must be one_hot (0) or label_ids (1) (got %d)",
                    s.input_mode);
    if (s.hidden_width > kGenericMaxWidth || s.out_channels > kGenericMaxWidth)
        return fail(ASAP_ERR_SHAPE, "[width_limit] hidden_width and out_channels must be <= %d (got %d and %d)",
                    kGenericMaxWidth, s.hidden_width, s.out_channels);
    // -- data types and layout -------------------------------------------------------------------
    if (t.params_dtype != ASAP_FLOAT32 && t.params_dtype != ASAP_FLOAT16)
        return fail(ASAP_ERR_DTYPE, "[params_dtype] params must be float32 or float16 (got %s)",
                    dtype_name(t.params_dtype));
    bool const ids = s.input_mode == kInputLabelIds;
    if (ids && t.input_dtype != ASAP_INT32)
        return fail(ASAP_ERR_DTYPE, "[input_dtype] label_ids mode takes int32 class ids (got %s)",
                    dtype_name(t.input_dtype));
    if (!ids && t.input_dtype != t.params_dtype)
        return fail(ASAP_ERR_DTYPE, "[input_dtype] the one-hot label must have the params' type %s (got %s)",
                    dtype_name(t.params_dtype), dtype_name(t.input_dtype));
    if (t.params_layout != ASAP_PARAMS_NCHW && t.params_layout != ASAP_PARAMS_NHWC)
        return fail(ASAP_ERR_LAYOUT, "[params_layout] params_layout must be NCHW (0) or NHWC (1) (got %d)",
                    t.params_layout);
    int64_t const np = num_params(s);
    if (t.params_layout == ASAP_PARAMS_NHWC && t.params_pitch != 0 && t.params_pitch < np)
        return fail(ASAP_ERR_LAYOUT,
                    "[params_pitch] a channels-last params pitch must be >= the %lld parameters per cell (got %d)",
                    static_cast<long long>(np), t.params_pitch);
    // -- dimensions (each rule checks what is known) -----------------------------------------------
    int64_t const *x = t.input_dims, *p = t.params_dims;
    int64_t const S = s.downsampling;
    if (ids && known(x[1]) && x[1] != 1)
        return fail(ASAP_ERR_DIMS, "[input_channels] label_ids mode takes a (B, 1, H, W) id map (got %lld channels)",
                    static_cast<long long>(x[1]));
    if (!ids && known(x[1]) && x[1] < s.in_channels)
        return fail(ASAP_ERR_DIMS, "[input_channels] the label has %lld channels, the MLP reads in_channels = %d",
                    static_cast<long long>(x[1]), s.in_channels);
    char const* axes[2] = {"height", "width"};
    for (int i = 2; i < 4; ++i)
        if (known(x[i]) && (x[i] < S || x[i] % S != 0))
            return fail(ASAP_ERR_DIMS, "[resolution] the label %s %lld is not a positive multiple of S = %lld",
                        axes[i - 2], static_cast<long long>(x[i]), static_cast<long long>(S));
    if (known(x[0]) && (x[0] < 1 || x[0] > 65535))
        return fail(ASAP_ERR_DIMS, "[batch_range] the batch must be 1..65535 (got %lld)", static_cast<long long>(x[0]));
    if (known(x[0]) && known(p[0]) && p[0] != x[0])
        return fail(ASAP_ERR_DIMS, "[batch_match] params batch %lld differs from the label batch %lld",
                    static_cast<long long>(p[0]), static_cast<long long>(x[0]));
    if (known(p[1]) && p[1] != np)
        return fail(
            ASAP_ERR_DIMS,
            "[params_channels] params has %lld channels, the MLP's attributes need %lld (check the node's attributes)",
            static_cast<long long>(p[1]), static_cast<long long>(np));
    for (int i = 2; i < 4; ++i)
        if (known(x[i]) && known(p[i]) && p[i] * S != x[i])
            return fail(ASAP_ERR_DIMS, "[grid] the params grid %s %lld must be the label %s / S = %lld", axes[i - 2],
                        static_cast<long long>(p[i]), axes[i - 2], static_cast<long long>(x[i] / S));
    if (known(x[2]) && known(x[3]) && (x[2] / S) * (x[3] / S) > 0x7fffffff)
        return fail(ASAP_ERR_DIMS, "[grid_size] %lld grid cells exceed 2^31 - 1",
                    static_cast<long long>((x[2] / S) * (x[3] / S)));
    return ASAP_OK;
}

}  // namespace asap

extern "C" int asap_spatial_mlp_validate(const AsapMLPShape* shape, const AsapMLPTensors* tensors) {
    if (!shape || !tensors) return asap::fail(ASAP_ERR_SHAPE, "shape and tensors must not be NULL");
    return asap::validate(*shape, *tensors);
}

extern "C" const char* asap_last_error(void) { return asap::g_last_error; }

extern "C" const char* asap_status_string(int status) {
    switch (status) {
        case ASAP_OK:
            return "ok";
        case ASAP_ERR_SHAPE:
            return "invalid MLP attributes";
        case ASAP_ERR_DIMS:
            return "tensor dimensions disagree with the attributes or with each other";
        case ASAP_ERR_DTYPE:
            return "unsupported or inconsistent data types";
        case ASAP_ERR_LAYOUT:
            return "invalid params layout";
        case ASAP_ERR_CUDA:
            return "CUDA launch failed";
        default:
            return "unknown status";
    }
}
