// asap_trt_run: an application embedding an asap_deploy TensorRT engine. A label map PNG goes in,
// the generated image PNG comes out, byte for byte as the authors' test.py would save it, and the
// latency is reported the way trtexec does (H2D, GPU compute and D2H timed apart with CUDA events).
//
//   asap_trt_run ENGINE.plan --manifest EXPORT/manifest.json --input label.png [--instance inst.png]
//                --output image.png [--plugin build/engines/libasap_trt_plugin.so]
//                [--iterations N] [--warmup N] [--cuda-graph]
//
// What an application has to do, in order: read the settings of the export (manifest.json), read
// and check the label map, load the plugin library, deserialize the engine and check it against
// the export (and its sidecar ENGINE.plan.json: TensorRT version, GPU, ONNX hash), bind buffers,
// run, convert the image. Everything but TensorRT and CUDA lives in engines/app (asap_app).
//
// Exit codes: 0 done; 2 a problem with the inputs or the set-up, named with its fix on one line;
// 1 a failure while running (CUDA or TensorRT error).
#include "NvInferRuntime.h"

#include "error.h"
#include "image_output.h"
#include "inputs.h"
#include "manifest.h"
#include "png_io.h"
#include "sidecar.h"

#include <cuda_runtime.h>
#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

namespace {

using asap::app::DType;
using asap::app::Error;

constexpr char const* kPluginName = "ASAP_SpatialMLP";
constexpr char const* kPluginVersion = "1";
constexpr char const* kPluginNamespace = "asap_deploy";

constexpr char const* kUsage =
    "usage: asap_trt_run ENGINE.plan --manifest EXPORT/manifest.json --input LABEL.png "
    "[--instance INSTANCE.png] --output IMAGE.png [--plugin LIB.so] [--iterations N] [--warmup N] "
    "[--cuda-graph]";

// A failure at run time (CUDA, TensorRT execution): exit code 1.
class RuntimeFailure : public std::runtime_error {
  public:
    explicit RuntimeFailure(std::string const& m) : std::runtime_error(m) {}
};

void cudaCheck(cudaError_t status, char const* what) {
    if (status != cudaSuccess)
        throw RuntimeFailure(std::string(what) + " failed: " + cudaGetErrorName(status) + " (" +
                             cudaGetErrorString(status) + ")");
}

// Warnings go to stderr as they come; errors are kept for the one-line message of the failure
// they cause.
class Logger : public nvinfer1::ILogger {
  public:
    void log(Severity severity, char const* msg) noexcept override {
        if (severity <= Severity::kERROR) {
            mErrors.emplace_back(msg);
        } else if (severity == Severity::kWARNING) {
            std::fprintf(stderr, "warning: [TensorRT] %s\n", msg);
        }
    }
    std::string takeErrors() {
        std::string all;
        for (auto const& e : mErrors) all += (all.empty() ? "" : "; ") + e;
        mErrors.clear();
        for (char& c : all)
            if (c == '\n') c = ' ';
        return all;
    }

  private:
    std::vector<std::string> mErrors;
};

struct Options {
    std::string engine, manifest, input, instance, output, plugin;
    int iterations = 100;
    int warmup = 20;
    bool cudaGraph = false;
};

int positiveInt(char const* flag, char const* text) {
    char* end = nullptr;
    long const v = std::strtol(text, &end, 10);
    if (!*text || *end || v < 0 || v > 1000000)
        throw Error(std::string(flag) + " takes a whole number (0..1000000), not \"" + text + "\"");
    return static_cast<int>(v);
}

Options parseArgs(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        std::string const a = argv[i];
        auto value = [&]() -> char const* {
            if (i + 1 >= argc) throw Error(a + " needs a value. " + kUsage);
            return argv[++i];
        };
        if (a == "--manifest")
            o.manifest = value();
        else if (a == "--input")
            o.input = value();
        else if (a == "--instance")
            o.instance = value();
        else if (a == "--output")
            o.output = value();
        else if (a == "--plugin")
            o.plugin = value();
        else if (a == "--iterations")
            o.iterations = positiveInt("--iterations", value());
        else if (a == "--warmup")
            o.warmup = positiveInt("--warmup", value());
        else if (a == "--cuda-graph")
            o.cudaGraph = true;
        else if (a == "-h" || a == "--help")
            throw Error(kUsage);
        else if (!a.empty() && a[0] == '-')
            throw Error("unknown option " + a + ". " + kUsage);
        else if (o.engine.empty())
            o.engine = a;
        else
            throw Error("more than one engine given (" + o.engine + ", " + a + "). " + kUsage);
    }
    if (o.engine.empty()) throw Error(std::string("no engine given. ") + kUsage);
    if (o.manifest.empty()) throw Error(std::string("--manifest is required (the export's manifest.json). ") + kUsage);
    if (o.input.empty()) throw Error(std::string("--input is required (a label map PNG). ") + kUsage);
    if (o.output.empty()) throw Error(std::string("--output is required (where to write the image PNG). ") + kUsage);
    if (o.iterations < 1) throw Error("--iterations must be at least 1");
    return o;
}

// ---------------------------------------------------------------------------------------------
// The plugin library: either variant of libasap_trt_plugin (engines/plugin/spatialMLPPlugin).

void loadPlugin(std::string const& path, nvinfer1::IRuntime& runtime, Logger& logger) {
    if (!std::filesystem::is_regular_file(path))
        throw Error("plugin library " + path +
                    " not found: build it with python -m "
                    "asap_deploy.build_plugin --tensorrt-root $TensorRT_ROOT (it writes build/engines/)");
    auto registered = [] {
        return getPluginRegistry()->getCreator(kPluginName, kPluginVersion, kPluginNamespace) != nullptr;
    };
    if (registered()) return;
    // The static variant registers itself when loaded (it links libnvinfer, already resident).
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle)
        throw Error("cannot load the plugin library " + path + ": " + dlerror() +
                    " (it must be built "
                    "against this TensorRT and CUDA; is the CUDA runtime on LD_LIBRARY_PATH?)");
    if (registered()) return;
    // The dynamic variant exports getCreators for IPluginRegistry::loadLibrary instead.
    bool const dynamicVariant = dlsym(handle, "getCreators") != nullptr;
    if (dynamicVariant && runtime.getPluginRegistry().loadLibrary(path.c_str()) && registered()) return;
    std::string const why = logger.takeErrors();
    throw Error(path + " does not provide " + kPluginName + " v" + kPluginVersion + " (namespace " + kPluginNamespace +
                ")" + (why.empty() ? "" : " [TensorRT: " + why + "]") +
                ": pass libasap_trt_plugin.so from python -m asap_deploy.build_plugin");
}

// ---------------------------------------------------------------------------------------------
// CUDA resources.

struct DeviceBuffer {
    void* ptr = nullptr;
    explicit DeviceBuffer(size_t bytes) { cudaCheck(cudaMalloc(&ptr, std::max<size_t>(bytes, 1)), "cudaMalloc"); }
    ~DeviceBuffer() { cudaFree(ptr); }
    DeviceBuffer(DeviceBuffer const&) = delete;
    DeviceBuffer& operator=(DeviceBuffer const&) = delete;
};

struct PinnedBuffer {
    void* ptr = nullptr;
    explicit PinnedBuffer(size_t bytes) {
        cudaCheck(cudaMallocHost(&ptr, std::max<size_t>(bytes, 1)), "cudaMallocHost");
    }
    ~PinnedBuffer() { cudaFreeHost(ptr); }
    PinnedBuffer(PinnedBuffer const&) = delete;
    PinnedBuffer& operator=(PinnedBuffer const&) = delete;
};

struct Stream {
    cudaStream_t s = nullptr;
    Stream() { cudaCheck(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate"); }
    ~Stream() { cudaStreamDestroy(s); }
};

struct Event {
    cudaEvent_t e = nullptr;
    Event() { cudaCheck(cudaEventCreate(&e), "cudaEventCreate"); }
    ~Event() { cudaEventDestroy(e); }
};

struct Graph {
    cudaGraph_t graph = nullptr;
    cudaGraphExec_t exec = nullptr;
    ~Graph() {
        if (exec) cudaGraphExecDestroy(exec);
        if (graph) cudaGraphDestroy(graph);
    }
};

struct IOBuffer {
    std::string name;
    bool isInput = true;
    DType dtype = DType::kFloat32;
    nvinfer1::Dims dims{};
    size_t bytes = 0;
    std::unique_ptr<DeviceBuffer> device;
    std::unique_ptr<PinnedBuffer> host;
};

DType toDType(nvinfer1::DataType t, std::string const& name) {
    switch (t) {
        case nvinfer1::DataType::kFLOAT:
            return DType::kFloat32;
        case nvinfer1::DataType::kHALF:
            return DType::kFloat16;
        case nvinfer1::DataType::kINT32:
            return DType::kInt32;
        case nvinfer1::DataType::kUINT8:
            return DType::kUint8;
        default:
            throw Error("engine tensor " + name + " has TensorRT data type " + std::to_string(static_cast<int>(t)) +
                        ", which no asap_deploy export produces");
    }
}

std::vector<int64_t> toVector(nvinfer1::Dims const& d) { return std::vector<int64_t>(d.d, d.d + d.nbDims); }

size_t volume(nvinfer1::Dims const& d) {
    size_t n = 1;
    for (int i = 0; i < d.nbDims; ++i) n *= static_cast<size_t>(std::max<int64_t>(d.d[i], 0));
    return n;
}

// ---------------------------------------------------------------------------------------------
// trtexec-style statistics: percentile(p) is the value below which p% of the sorted samples lie.

struct Stats {
    double min = 0, max = 0, mean = 0, median = 0, p90 = 0, p95 = 0, p99 = 0;
};

Stats summarize(std::vector<double> v) {
    Stats s;
    if (v.empty()) return s;
    std::sort(v.begin(), v.end());
    size_t const n = v.size();
    auto percentile = [&](double p) {
        long const exclude = static_cast<long>((1.0 - p / 100.0) * static_cast<double>(n));
        long const index = std::clamp<long>(static_cast<long>(n) - 1 - exclude, 0, static_cast<long>(n) - 1);
        return v[static_cast<size_t>(index)];
    };
    s.min = v.front();
    s.max = v.back();
    double sum = 0;
    for (double x : v) sum += x;
    s.mean = sum / static_cast<double>(n);
    s.median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    s.p90 = percentile(90);
    s.p95 = percentile(95);
    s.p99 = percentile(99);
    return s;
}

void printStats(char const* label, std::vector<double> const& values) {
    Stats const s = summarize(values);
    std::printf(
        "%s: min = %.5f ms, max = %.5f ms, mean = %.5f ms, median = %.5f ms, "
        "percentile(90%%) = %.5f ms, percentile(95%%) = %.5f ms, percentile(99%%) = %.5f ms\n",
        label, s.min, s.max, s.mean, s.median, s.p90, s.p95, s.p99);
}

// ---------------------------------------------------------------------------------------------

int run(Options const& o) {
    using namespace asap::app;
    // Cheap checks of what the user gave come first, before the GPU and the engine.
    Manifest const manifest = Manifest::read(o.manifest);
    LabelInputs const maps = loadLabelInputs(manifest, o.input, o.instance);
    for (auto const& note : maps.notes) std::fprintf(stderr, "note: %s\n", note.c_str());
    if (!std::filesystem::is_regular_file(o.engine))
        throw Error(o.engine +
                    ": engine not found (build one with python -m asap_deploy.build "
                    "EXPORT/asapnet_plugin_fp16.onnx)");

    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0)
        throw Error("no CUDA GPU is visible to this process (check the driver and CUDA_VISIBLE_DEVICES)");
    cudaDeviceProp gpu{};
    cudaCheck(cudaGetDeviceProperties(&gpu, 0), "cudaGetDeviceProperties");
    EngineSidecar const sidecar = EngineSidecar::read(o.engine);
    std::string const trtVersion = std::to_string(getInferLibMajorVersion()) + "." +
                                   std::to_string(getInferLibMinorVersion()) + "." +
                                   std::to_string(getInferLibPatchVersion());
    checkSidecar(sidecar, o.engine, trtVersion, gpu.name, std::to_string(gpu.major) + "." + std::to_string(gpu.minor),
                 !o.plugin.empty());

    Logger logger;
    std::unique_ptr<nvinfer1::IRuntime> runtime{nvinfer1::createInferRuntime(logger)};
    if (!runtime)
        throw Error("cannot create the TensorRT runtime: libnvinfer " + std::to_string(getInferLibVersion()) +
                    " does not match the TensorRT " + std::to_string(NV_TENSORRT_MAJOR) + "." +
                    std::to_string(NV_TENSORRT_MINOR) + " headers this application was built with");
    if (!o.plugin.empty()) loadPlugin(o.plugin, *runtime, logger);

    std::ifstream file(o.engine, std::ios::binary);
    std::vector<char> const plan((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    if (!file.good() && !file.eof()) throw Error(o.engine + ": read error");
    std::unique_ptr<nvinfer1::ICudaEngine> engine{runtime->deserializeCudaEngine(plan.data(), plan.size())};
    if (!engine) {
        std::string const why = logger.takeErrors();
        std::string hint = "was it built by another TensorRT version or for another GPU? " + sidecar.rebuildHint();
        if (o.plugin.empty() && why.find(kPluginName) != std::string::npos)
            hint = std::string("it uses the ") + kPluginName +
                   " plugin: pass --plugin build/engines/libasap_trt_plugin.so";
        throw Error(o.engine + " could not be deserialized (TensorRT: " + (why.empty() ? "no message" : why) +
                    "): " + hint);
    }

    std::vector<EngineTensor> io;
    for (int32_t i = 0; i < engine->getNbIOTensors(); ++i) {
        char const* name = engine->getIOTensorName(i);
        EngineTensor t;
        t.name = name;
        t.isInput = engine->getTensorIOMode(name) == nvinfer1::TensorIOMode::kINPUT;
        t.dtype = toDType(engine->getTensorDataType(name), name);
        t.dims = toVector(engine->getTensorShape(name));
        if (engine->getTensorFormat(name) != nvinfer1::TensorFormat::kLINEAR)
            throw Error(std::string("engine tensor ") + name +
                        " is not in linear (NCHW) format; build the "
                        "engine with python -m asap_deploy.build, which keeps I/O linear");
        if (engine->getTensorLocation(name) != nvinfer1::TensorLocation::kDEVICE)
            throw Error(std::string("engine tensor ") + name + " is a host (shape) tensor; not an asap_deploy engine");
        io.push_back(t);
    }
    GraphFile const& graph = matchEngine(manifest, io, sidecar.onnxSha256, o.engine);
    std::vector<HostTensor> const inputs = makeInputs(manifest, graph, maps);

    std::unique_ptr<nvinfer1::IExecutionContext> context{engine->createExecutionContext()};
    if (!context) throw RuntimeFailure("createExecutionContext failed: " + logger.takeErrors());

    // Batch 1: the engine's profile must admit it.
    for (HostTensor const& in : inputs) {
        char const* name = in.spec.name.c_str();
        nvinfer1::Dims dims = engine->getTensorShape(name);
        if (dims.d[0] < 0) {
            nvinfer1::Dims const lo = engine->getProfileShape(name, 0, nvinfer1::OptProfileSelector::kMIN);
            nvinfer1::Dims const hi = engine->getProfileShape(name, 0, nvinfer1::OptProfileSelector::kMAX);
            if (lo.d[0] > 1 || hi.d[0] < 1)
                throw Error(o.engine + ": its batch profile is " + std::to_string(lo.d[0]) + ".." +
                            std::to_string(hi.d[0]) +
                            " and this application runs one image: rebuild with "
                            "python -m asap_deploy.build ... --batch 1");
            dims.d[0] = 1;
        } else if (dims.d[0] != 1) {
            throw Error(o.engine + " has a fixed batch of " + std::to_string(dims.d[0]) +
                        " and this application runs one image: rebuild with --batch 1");
        }
        if (!context->setInputShape(name, dims))
            throw Error(std::string("TensorRT refused the shape of input ") + name + ": " + logger.takeErrors());
    }

    std::vector<IOBuffer> buffers;
    for (EngineTensor const& t : io) {
        IOBuffer b;
        b.name = t.name;
        b.isInput = t.isInput;
        b.dtype = t.dtype;
        b.dims = context->getTensorShape(t.name.c_str());
        for (int d = 0; d < b.dims.nbDims; ++d)
            if (b.dims.d[d] < 0)
                throw RuntimeFailure("TensorRT left tensor " + t.name + " with an unresolved dimension");
        b.bytes = volume(b.dims) * elementSize(t.dtype);
        b.device = std::make_unique<DeviceBuffer>(b.bytes);
        b.host = std::make_unique<PinnedBuffer>(b.bytes);
        if (t.isInput) {
            for (HostTensor const& in : inputs) {
                if (in.spec.name != t.name) continue;
                if (in.bytes.size() != b.bytes)
                    throw RuntimeFailure("input " + t.name + " holds " + std::to_string(in.bytes.size()) +
                                         " bytes, the engine expects " + std::to_string(b.bytes));
                std::memcpy(b.host->ptr, in.bytes.data(), b.bytes);
            }
        }
        if (!context->setTensorAddress(t.name.c_str(), b.device->ptr))
            throw RuntimeFailure("setTensorAddress(" + t.name + ") failed: " + logger.takeErrors());
        buffers.push_back(std::move(b));
    }
    IOBuffer const* image = nullptr;
    for (auto const& b : buffers)
        if (!b.isInput && b.name == "image") image = &b;
    if (!image || image->dims.nbDims != 4 || image->dims.d[1] != manifest.outputNc ||
        image->dims.d[2] != manifest.height || image->dims.d[3] != manifest.width)
        throw Error(o.engine + ": its output image is not [1, " + std::to_string(manifest.outputNc) + ", " +
                    std::to_string(manifest.height) + ", " + std::to_string(manifest.width) + "]");

    Stream stream;
    Graph cudaGraph;
    bool useGraph = false;
    auto compute = [&] {
        if (useGraph) {
            cudaCheck(cudaGraphLaunch(cudaGraph.exec, stream.s), "cudaGraphLaunch");
        } else if (!context->enqueueV3(stream.s)) {
            throw RuntimeFailure("enqueueV3 failed: " + logger.takeErrors());
        }
    };
    Event start, uploaded, computed, downloaded;
    std::vector<double> h2d, gpu_ms, d2h, latency, enqueue;
    auto query = [&](bool record) {
        cudaCheck(cudaEventRecord(start.e, stream.s), "cudaEventRecord");
        for (auto const& b : buffers)
            if (b.isInput)
                cudaCheck(cudaMemcpyAsync(b.device->ptr, b.host->ptr, b.bytes, cudaMemcpyHostToDevice, stream.s),
                          "H2D copy");
        cudaCheck(cudaEventRecord(uploaded.e, stream.s), "cudaEventRecord");
        auto const t0 = std::chrono::steady_clock::now();
        compute();
        auto const t1 = std::chrono::steady_clock::now();
        cudaCheck(cudaEventRecord(computed.e, stream.s), "cudaEventRecord");
        for (auto const& b : buffers)
            if (!b.isInput)
                cudaCheck(cudaMemcpyAsync(b.host->ptr, b.device->ptr, b.bytes, cudaMemcpyDeviceToHost, stream.s),
                          "D2H copy");
        cudaCheck(cudaEventRecord(downloaded.e, stream.s), "cudaEventRecord");
        cudaCheck(cudaEventSynchronize(downloaded.e), "running the engine");
        if (!record) return;
        float a = 0, b = 0, c = 0;
        cudaCheck(cudaEventElapsedTime(&a, start.e, uploaded.e), "cudaEventElapsedTime");
        cudaCheck(cudaEventElapsedTime(&b, uploaded.e, computed.e), "cudaEventElapsedTime");
        cudaCheck(cudaEventElapsedTime(&c, computed.e, downloaded.e), "cudaEventElapsedTime");
        h2d.push_back(a);
        gpu_ms.push_back(b);
        d2h.push_back(c);
        latency.push_back(static_cast<double>(a) + b + c);
        enqueue.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    };

    query(false);  // the first run does TensorRT's lazy set-up; never timed, never captured
    if (o.cudaGraph) {
        // Only the engine is captured; the copies stay outside so they are timed apart.
        bool captured = cudaStreamBeginCapture(stream.s, cudaStreamCaptureModeThreadLocal) == cudaSuccess;
        bool const enqueued = captured && context->enqueueV3(stream.s);
        if (captured) captured = cudaStreamEndCapture(stream.s, &cudaGraph.graph) == cudaSuccess && enqueued;
        if (captured) captured = cudaGraphInstantiateWithFlags(&cudaGraph.exec, cudaGraph.graph, 0) == cudaSuccess;
        useGraph = captured;
        if (!captured) {
            cudaGetLastError();  // clear the capture error; run uncaptured instead
            std::fprintf(stderr,
                         "warning: the engine could not be captured in a CUDA graph (%s); "
                         "timing enqueueV3 instead\n",
                         logger.takeErrors().c_str());
        }
    }
    for (int i = 0; i < o.warmup; ++i) query(false);
    auto const wallStart = std::chrono::steady_clock::now();
    for (int i = 0; i < o.iterations; ++i) query(true);
    double const wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wallStart).count();

    Image8 const img = imageFromTensor(image->host->ptr, image->dtype, static_cast<int>(image->dims.d[1]),
                                       static_cast<int>(image->dims.d[2]), static_cast<int>(image->dims.d[3]));
    writePng(o.output, img.pixels.data(), img.width, img.height, img.channels);

    std::string ioText;
    for (auto const& b : buffers)
        ioText += (ioText.empty() ? "" : ", ") + std::string(b.isInput ? "in " : "out ") + b.name + " " +
                  dtypeName(b.dtype) + " " + shapeString(toVector(b.dims));
    std::printf("engine: %s (%s of %s), TensorRT %s, %s (sm %d.%d)\n", o.engine.c_str(), graph.file.c_str(),
                manifest.path.c_str(), trtVersion.c_str(), gpu.name, gpu.major, gpu.minor);
    std::printf("tensors: %s\n", ioText.c_str());
    double totalGpu = 0;
    for (double x : gpu_ms) totalGpu += x;
    std::printf(
        "=== Performance summary: batch 1, %d queries after %d warm-up, each synchronised; "
        "CUDA graph %s ===\n",
        o.iterations, o.warmup, useGraph ? "on" : "off");
    std::printf("Throughput: %.3f qps\n", o.iterations / wall);
    printStats("Latency", latency);
    printStats("Enqueue Time", enqueue);
    printStats("H2D Latency", h2d);
    printStats("GPU Compute Time", gpu_ms);
    printStats("D2H Latency", d2h);
    std::printf("Total Host Walltime: %.5f s\n", wall);
    std::printf("Total GPU Compute Time: %.5f s\n", totalGpu / 1000.0);
    if (img.nanCount)
        std::fprintf(stderr,
                     "warning: the engine produced %zu NaN values (written as 0); compare it with "
                     "the FP32 engine (python -m asap_deploy.parity)\n",
                     img.nanCount);
    std::printf("wrote %s (%dx%d %s)\n", o.output.c_str(), img.width, img.height,
                img.channels == 3 ? "RGB" : "grayscale");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(parseArgs(argc, argv));
    } catch (Error const& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 2;
    } catch (RuntimeFailure const& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    } catch (std::exception const& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
}
