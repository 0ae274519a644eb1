// CPU build of the per-pixel MLP from the same header the CUDA kernels use. CI compiles it with
// the host compiler and checks it (and the layout queries) against the PyTorch model, so the index
// arithmetic is verified on machines without a GPU.
#include "spatial_mlp_api.h"
#include "spatial_mlp_layout.h"

#include <vector>

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
    int class_id() const {
        return static_cast<int32_t const*>(input)[asap::pixel_index(b, 0, y, x, 1, height, width)];
    }
};

constexpr int kMaxWidth = 512;

}  // namespace

extern "C" int asap_spatial_mlp_forward_cpu(const AsapMLPShape* shape, const void* input,
                                            int input_channels, const float* params, float* output,
                                            int batch, int height, int width) {
    asap::MLPShape const& s = *shape;
    if (!asap::shape_is_valid(s) || s.hidden_width > kMaxWidth || s.out_channels > kMaxWidth)
        return ASAP_ERR_SHAPE;
    int const S = s.downsampling;
    if (height <= 0 || width <= 0 || height % S || width % S || batch <= 0) return ASAP_ERR_RESOLUTION;
    if (s.input_mode == asap::kInputOneHot && input_channels < s.in_channels) return ASAP_ERR_RESOLUTION;
    int const gh = height / S, gw = width / S, np = asap::num_params(s);
    std::vector<float> out(s.out_channels);
    for (int b = 0; b < batch; ++b)
        for (int y = 0; y < height; ++y)
            for (int x = 0; x < width; ++x) {
                int const cy = y / S, cx = x / S;
                HostWeights w{params + asap::params_index(b, 0, cy, cx, np, gh, gw),
                              static_cast<int64_t>(gh) * gw};
                HostInput in{input, input_channels, height, width, b, y, x};
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
