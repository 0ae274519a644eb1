// CPU build of the per-pixel MLP from the same header the CUDA kernels use. CI compiles it with
// the host compiler and checks it (and the layout queries) against the PyTorch model, so the
// index arithmetic is verified on machines without a GPU; it is also the reference the emulated
// kernels are compared with.
#include "spatial_mlp_api.h"
#include "spatial_mlp_layout.h"

#include <vector>

namespace asap {
int validate(MLPShape const& s, AsapMLPTensors const& t);
int fail(int status, char const* fmt, ...);
}  // namespace asap

namespace {

struct HostWeights {
    float const* base;
    int64_t stride;
    float operator()(int p) const { return base[p * stride]; }
};

struct HostInput {
    void const* input;
    int channels, height, width, b, y, x;
    float label(int c) const {
        return static_cast<float const*>(input)[asap::pixel_index(b, c, y, x, channels, height, width)];
    }
    int class_id() const { return static_cast<int32_t const*>(input)[asap::pixel_index(b, 0, y, x, 1, height, width)]; }
};

constexpr int kMaxWidth = 512;

}  // namespace

extern "C" int asap_spatial_mlp_forward_cpu(const AsapMLPShape* shape, const AsapMLPTensors* tensors, const void* input,
                                            const float* params, float* output) {
    if (!shape || !tensors) return asap::fail(ASAP_ERR_SHAPE, "shape and tensors must not be NULL");
    asap::MLPShape const& s = *shape;
    AsapMLPTensors const& t = *tensors;
    if (t.params_dtype != ASAP_FLOAT32) return asap::fail(ASAP_ERR_DTYPE, "the CPU reference computes in float32 only");
    int const status = asap::validate(s, t);
    if (status != ASAP_OK) return status;
    for (int i = 0; i < 4; ++i)
        if (t.input_dims[i] < 0 || t.params_dims[i] < 0)
            return asap::fail(ASAP_ERR_DIMS, "every dimension must be known when running (got -1)");
    int const batch = static_cast<int>(t.input_dims[0]), channels = static_cast<int>(t.input_dims[1]),
              height = static_cast<int>(t.input_dims[2]), width = static_cast<int>(t.input_dims[3]);
    int const S = s.downsampling, gh = height / S, gw = width / S;
    asap::ParamsView const pv = asap::params_view(t.params_layout, asap::num_params(s), t.params_pitch, gh, gw);
    std::vector<float> out(s.out_channels);
    for (int b = 0; b < batch; ++b)
        for (int y = 0; y < height; ++y)
            for (int x = 0; x < width; ++x) {
                HostWeights w{params + pv.cell_base(b, y / S, x / S), pv.channel};
                HostInput in{input, channels, height, width, b, y, x};
                asap::mlp_pixel<kMaxWidth>(s, w, in, y % S, x % S, out.data());
                for (int o = 0; o < s.out_channels; ++o)
                    output[asap::pixel_index(b, o, y, x, s.out_channels, height, width)] = out[o];
            }
    return ASAP_OK;
}

extern "C" int asap_mlp_num_params(const AsapMLPShape* s) { return asap::num_params(*s); }
extern "C" int asap_mlp_bias_offset(const AsapMLPShape* s, int l) { return asap::bias_offset(*s, l); }
extern "C" int asap_mlp_weight_offset(const AsapMLPShape* s, int l) { return asap::weight_offset(*s, l); }
extern "C" float asap_mlp_pe_value(const AsapMLPShape* s, int ch, int dy, int dx) {
    return asap::pe_value(*s, ch, dy, dx);
}
extern "C" int asap_tensor_core_smem_bytes(const AsapMLPShape* s) { return asap::fast_layout(*s).total; }
