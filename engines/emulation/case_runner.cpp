// Runs kernel test cases through the kernels and compares each with the CPU reference build of
// the same header. Built two ways: with the emulated kernel, under a sanitizer (asap_emu_cases_asan,
// asap_emu_cases_tsan: sanitizer runtimes cannot be loaded into Python), and with the CUDA kernel
// (-DASAP_CASE_RUNNER_CUDA, asap_cuda_cases: what compute-sanitizer runs on a GPU). The case list
// comes from Python (tests/kernel_cases.py) as one line per case:
//   name=... in=35 S=16 hidden=64 depth=5 out=3 mode=one_hot|label_ids dtype=float16|float32
//   layout=nchw|nhwc pitch_pad=0 batch=1 gh=1 gw=1 extra=0 ids=normal|wide optin=65536
//   path=tensor_cores|generic_shared|generic_global tol=0.002 seed=1
// Inputs are generated here (deterministic), FP16 cases compare with the reference fed the same
// FP16-rounded values. Unused pitch padding and the output start as NaN, so a kernel that reads
// the padding or skips a pixel fails. Exit status: the number of failed cases (0: all passed).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "include/emu/half_bits.h"  // relative: the CUDA build must not see the emulator's headers
#include "spatial_mlp_api.h"
#include "spatial_mlp_layout.h"

#ifdef ASAP_CASE_RUNNER_CUDA
#include <cuda_runtime_api.h>
#endif

namespace {

struct Rng {  // splitmix64
    uint64_t s;
    uint64_t next() {
        uint64_t z = (s += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    double uniform() { return (next() >> 11) * (1.0 / 9007199254740992.0); }
    double normal() { return std::sqrt(-2.0 * std::log(1.0 - uniform())) * std::cos(6.283185307179586 * uniform()); }
    int below(int n) { return static_cast<int>(next() % static_cast<uint64_t>(n)); }
};

using Fields = std::map<std::string, std::string>;

int get_int(Fields const& f, char const* key, int fallback) {
    auto it = f.find(key);
    return it == f.end() ? fallback : std::atoi(it->second.c_str());
}

std::string get_str(Fields const& f, char const* key, char const* fallback) {
    auto it = f.find(key);
    return it == f.end() ? fallback : it->second;
}

char const* kPaths[] = {"tensor_cores", "generic_shared", "generic_global"};

float round_half(float v) { return emu::half_to_float(emu::float_to_half_rn(v)); }

// Where the kernel reads and writes: host memory for the emulation, device memory for CUDA.
struct Buffer {
    void* ptr = nullptr;
    size_t bytes = 0;
    Buffer(void const* host, size_t n) : bytes(n) {
#ifdef ASAP_CASE_RUNNER_CUDA
        if (cudaMalloc(&ptr, n) != cudaSuccess || cudaMemcpy(ptr, host, n, cudaMemcpyHostToDevice) != cudaSuccess) {
            std::fprintf(stderr, "CUDA allocation/copy failed: %s\n", cudaGetErrorString(cudaGetLastError()));
            std::exit(3);
        }
#else
        ptr = std::malloc(n);
        std::memcpy(ptr, host, n);
#endif
    }
    ~Buffer() {
#ifdef ASAP_CASE_RUNNER_CUDA
        cudaFree(ptr);
#else
        std::free(ptr);
#endif
    }
    void read(void* host) const {
#ifdef ASAP_CASE_RUNNER_CUDA
        if (cudaDeviceSynchronize() != cudaSuccess ||
            cudaMemcpy(host, ptr, bytes, cudaMemcpyDeviceToHost) != cudaSuccess) {
            std::fprintf(stderr, "CUDA error after the kernel: %s\n", cudaGetErrorString(cudaGetLastError()));
            std::exit(3);
        }
#else
        std::memcpy(host, ptr, bytes);
#endif
    }
    Buffer(Buffer const&) = delete;
    Buffer& operator=(Buffer const&) = delete;
};

// One case; returns true when it passed.
bool run_case(Fields const& f) {
    std::string const name = get_str(f, "name", "?");
    AsapMLPShape s{};
    s.in_channels = get_int(f, "in", 35);
    s.downsampling = get_int(f, "S", 16);
    s.num_frequencies = 0;
    while ((1 << s.num_frequencies) < s.downsampling) ++s.num_frequencies;
    s.hidden_width = get_int(f, "hidden", 64);
    s.depth = get_int(f, "depth", 5);
    s.out_channels = get_int(f, "out", 3);
    s.label_nc = s.in_channels - 1;
    bool const ids = get_str(f, "mode", "one_hot") == "label_ids";
    s.input_mode = ids ? asap::kInputLabelIds : asap::kInputOneHot;
    bool const fp16 = get_str(f, "dtype", "float16") == "float16";
    bool const nhwc = get_str(f, "layout", "nchw") == "nhwc";
    int const B = get_int(f, "batch", 1), gh = get_int(f, "gh", 1), gw = get_int(f, "gw", 1);
    int const S = s.downsampling, H = gh * S, W = gw * S, extra = get_int(f, "extra", 0);
    int const C = ids ? 1 : s.in_channels + extra, np = asap::num_params(s);
    int const pitch = nhwc ? np + get_int(f, "pitch_pad", 0) : 0;
    double const tol = std::atof(get_str(f, "tol", fp16 ? "2e-3" : "1e-5").c_str());
    Rng rng{static_cast<uint64_t>(get_int(f, "seed", 1)) * 7919u + 17u};
    // the shared memory the case runs under: the emulated device's limit, or a cap on a GPU's
    setenv("ASAP_EMU_SMEM_OPTIN", get_str(f, "optin", "65536").c_str(), 1);
    setenv("ASAP_SPATIAL_MLP_SMEM_LIMIT", get_str(f, "optin", "65536").c_str(), 1);

    // inputs: ids (255 = don't care; "wide" adds ids without a channel), their one-hot
    size_t const pixels = static_cast<size_t>(B) * H * W;
    std::vector<int32_t> id(pixels);
    int const odd[] = {-1, -7, s.in_channels, s.in_channels + 5, 1000, 255};
    for (auto& v : id) {
        v = rng.below(s.in_channels + 2);
        if (v == s.in_channels + 1) v = 255;
        if (get_str(f, "ids", "normal") == "wide" && rng.below(8) == 0) v = odd[rng.below(6)];
    }
    std::vector<float> label(ids ? 0 : static_cast<size_t>(B) * C * H * W);
    for (int b = 0; !ids && b < B; ++b)
        for (int c = 0; c < C; ++c)
            for (int p = 0; p < H * W; ++p) {
                int const cls = asap::class_channel(s, id[static_cast<size_t>(b) * H * W + p]);
                label[(static_cast<size_t>(b) * C + c) * H * W + p] =
                    c < s.in_channels ? (c == cls ? 1.f : 0.f) : static_cast<float>(rng.below(2));
            }
    // parameters like a trained model's (fan-in scaled), in the requested layout; padding NaN
    std::vector<float> logical(static_cast<size_t>(B) * gh * gw * np);  // [b][cell][p]
    for (size_t cell = 0; cell < static_cast<size_t>(B) * gh * gw; ++cell)
        for (int l = 0; l < s.depth; ++l) {
            int const ci = asap::layer_in(s, l), co = asap::layer_out(s, l);
            for (int o = 0; o < co; ++o)
                logical[cell * np + asap::bias_offset(s, l) + o] = static_cast<float>(0.1 * rng.normal());
            for (int k = 0; k < ci * co; ++k)
                logical[cell * np + asap::weight_offset(s, l) + k] = static_cast<float>(rng.normal() / std::sqrt(ci));
        }
    if (fp16) {
        for (auto& v : logical) v = round_half(v);
        for (auto& v : label) v = round_half(v);
    }
    size_t const storage = nhwc ? static_cast<size_t>(B) * gh * gw * pitch : logical.size();
    std::vector<float> params(storage, std::nanf(""));
    for (int b = 0; b < B; ++b)
        for (int cy = 0; cy < gh; ++cy)
            for (int cx = 0; cx < gw; ++cx)
                for (int p = 0; p < np; ++p) {
                    size_t const cell = (static_cast<size_t>(b) * gh + cy) * gw + cx;
                    size_t const at = nhwc ? cell * pitch + p : ((static_cast<size_t>(b) * np + p) * gh + cy) * gw + cx;
                    params[at] = logical[cell * np + p];
                }

    AsapMLPTensors t{};
    int64_t const in_dims[4] = {B, C, H, W}, p_dims[4] = {B, np, gh, gw};
    memcpy(t.input_dims, in_dims, sizeof(in_dims));
    memcpy(t.params_dims, p_dims, sizeof(p_dims));
    t.params_dtype = fp16 ? ASAP_FLOAT16 : ASAP_FLOAT32;
    t.input_dtype = ids ? ASAP_INT32 : t.params_dtype;
    t.params_layout = nhwc ? ASAP_PARAMS_NHWC : ASAP_PARAMS_NCHW;
    t.params_pitch = pitch;

    // reference (float32, same values)
    AsapMLPTensors tf = t;
    tf.params_dtype = ASAP_FLOAT32;
    tf.input_dtype = ids ? ASAP_INT32 : ASAP_FLOAT32;
    std::vector<float> ref(static_cast<size_t>(B) * s.out_channels * H * W);
    void const* ref_in = ids ? static_cast<void const*>(id.data()) : static_cast<void const*>(label.data());
    if (asap_spatial_mlp_forward_cpu(&s, &tf, ref_in, params.data(), ref.data()) != ASAP_OK) {
        std::printf("FAIL %s: CPU reference: %s\n", name.c_str(), asap_last_error());
        return false;
    }

    // the kernel, in the case's type
    std::vector<uint16_t> params16, label16;
    for (float v : params) params16.push_back(emu::float_to_half_rn(v));
    for (float v : label) label16.push_back(emu::float_to_half_rn(v));
    Buffer const p_buf(fp16 ? static_cast<void const*>(params16.data()) : params.data(),
                       params.size() * (fp16 ? 2 : 4));
    Buffer const x_buf(ids    ? static_cast<void const*>(id.data())
                       : fp16 ? static_cast<void const*>(label16.data())
                              : static_cast<void const*>(label.data()),
                       ids ? id.size() * 4 : label.size() * (fp16 ? 2 : 4));
    int const path = asap_spatial_mlp_path(&s, &t);
    std::string const want = get_str(f, "path", "");
    if (path < 0 || (!want.empty() && want != kPaths[path])) {
        std::printf("FAIL %s: path %s, expected %s (%s)\n", name.c_str(), path < 0 ? "invalid" : kPaths[path],
                    want.c_str(), path < 0 ? asap_last_error() : "");
        return false;
    }
    size_t const outs = ref.size();
    std::vector<float> out32(fp16 ? 0 : outs, std::nanf(""));
    std::vector<uint16_t> out16(fp16 ? outs : 0, emu::float_to_half_rn(std::nanf("")));
    void* out_host = fp16 ? static_cast<void*>(out16.data()) : static_cast<void*>(out32.data());
    Buffer const o_buf(out_host, outs * (fp16 ? 2 : 4));  // starts as NaN: unwritten pixels show
    if (asap_spatial_mlp_forward(&s, &t, x_buf.ptr, p_buf.ptr, o_buf.ptr, nullptr) != ASAP_OK) {
        std::printf("FAIL %s: %s\n", name.c_str(), asap_last_error());
        return false;
    }
    o_buf.read(out_host);
    double worst = 0;
    size_t bad = outs;
    for (size_t i = 0; i < outs; ++i) {
        double const v = fp16 ? emu::half_to_float(out16[i]) : out32[i];
        double const d = std::fabs(v - ref[i]);
        if (!(d <= worst)) {
            worst = std::isnan(d) ? INFINITY : d;
            bad = i;
        }
    }
    bool const ok = worst <= tol;
    std::printf("%s %s: path=%s max_abs=%.3g tol=%.3g%s\n", ok ? "ok  " : "FAIL", name.c_str(), kPaths[path], worst,
                tol, ok ? "" : (" at element " + std::to_string(bad)).c_str());
    return ok;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s CASES_FILE [NAME...]\n", argv[0]);
        return 2;
    }
    std::ifstream in(argv[1]);
    if (!in) {
        std::fprintf(stderr, "cannot read %s\n", argv[1]);
        return 2;
    }
    int failed = 0, ran = 0;
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        Fields f;
        std::istringstream words(line);
        std::string w;
        while (words >> w) {
            size_t const eq = w.find('=');
            if (eq != std::string::npos) f[w.substr(0, eq)] = w.substr(eq + 1);
        }
        bool wanted = argc == 2;
        for (int i = 2; i < argc; ++i) wanted |= f["name"] == argv[i];
        if (!wanted) continue;
        ++ran;
        failed += run_case(f) ? 0 : 1;
        std::fflush(stdout);
    }
    std::printf("%d of %d cases passed\n", ran - failed, ran);
    return failed > 125 ? 125 : failed;
}
