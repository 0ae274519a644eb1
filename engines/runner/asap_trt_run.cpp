// Minimal C++ embedding of an asap_deploy engine: load the plan (and the ASAP_SpatialMLP plugin
// library when the engine uses it), bind device buffers, run, and time GPU compute with events.
//
//   asap_trt_run ENGINE.plan [--plugin libasap_trt_plugin.so] [--iterations N]
//
// Inputs are synthetic (label channel 0 set: every pixel is class 0; ids zero); applications
// copy their own label maps into the input buffers instead.
#include "NvInferRuntime.h"

#include <cuda_runtime.h>
#include <dlfcn.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

namespace {

class Logger : public nvinfer1::ILogger {
    void log(Severity severity, char const* msg) noexcept override {
        if (severity <= Severity::kWARNING) std::fprintf(stderr, "[TensorRT] %s\n", msg);
    }
};

int fail(char const* what, char const* detail = "") {
    std::fprintf(stderr, "error: %s%s\n", what, detail);
    return 2;
}

size_t elementSize(nvinfer1::DataType t) {
    switch (t) {
        case nvinfer1::DataType::kHALF: return 2;
        case nvinfer1::DataType::kINT8: case nvinfer1::DataType::kUINT8: case nvinfer1::DataType::kBOOL: return 1;
        case nvinfer1::DataType::kINT64: return 8;
        default: return 4;
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) return fail("usage: asap_trt_run ENGINE.plan [--plugin LIB.so] [--iterations N]");
    std::string enginePath = argv[1], pluginPath;
    int iterations = 100;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--plugin")) pluginPath = argv[i + 1];
        else if (!std::strcmp(argv[i], "--iterations")) iterations = std::max(1, std::atoi(argv[i + 1]));
        else return fail("unknown option ", argv[i]);
    }
    Logger logger;
    // The self-registering plugin library must be loaded before deserialisation.
    if (!pluginPath.empty() && !dlopen(pluginPath.c_str(), RTLD_NOW | RTLD_GLOBAL))
        return fail("cannot load the plugin library: ", dlerror());
    std::ifstream file(enginePath, std::ios::binary);
    if (!file) return fail("cannot open ", enginePath.c_str());
    std::vector<char> plan((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());

    std::unique_ptr<nvinfer1::IRuntime> runtime{nvinfer1::createInferRuntime(logger)};
    std::unique_ptr<nvinfer1::ICudaEngine> engine{runtime->deserializeCudaEngine(plan.data(), plan.size())};
    if (!engine)
        return fail("could not deserialize the engine: built by another TensorRT version, for "
                    "another GPU, or the ASAP_SpatialMLP plugin is not loaded (--plugin)");
    std::unique_ptr<nvinfer1::IExecutionContext> ctx{engine->createExecutionContext()};

    std::vector<void*> buffers;
    for (int32_t i = 0; i < engine->getNbIOTensors(); ++i) {
        char const* name = engine->getIOTensorName(i);
        nvinfer1::Dims dims = engine->getTensorShape(name);
        if (dims.d[0] < 0) dims.d[0] = 1;  // batch 1 within the profile
        size_t count = 1;
        for (int32_t d = 0; d < dims.nbDims; ++d) count *= static_cast<size_t>(dims.d[d]);
        size_t const bytes = count * elementSize(engine->getTensorDataType(name));
        void* ptr = nullptr;
        if (cudaMalloc(&ptr, bytes) != cudaSuccess) return fail("cudaMalloc failed for ", name);
        cudaMemset(ptr, 0, bytes);
        bool const isInput = engine->getTensorIOMode(name) == nvinfer1::TensorIOMode::kINPUT;
        if (isInput) {
            ctx->setInputShape(name, dims);
            if (!std::strcmp(name, "label")) {  // one-hot: class 0 everywhere (channel 0 = 1)
                size_t const plane = count / static_cast<size_t>(dims.d[1]);
                std::vector<float> ones(plane, 1.f);
                if (engine->getTensorDataType(name) == nvinfer1::DataType::kFLOAT)
                    cudaMemcpy(ptr, ones.data(), plane * 4, cudaMemcpyHostToDevice);
            }
        }
        ctx->setTensorAddress(name, ptr);
        buffers.push_back(ptr);
        std::printf("%s %s [%d dims] %zu bytes\n", isInput ? "input " : "output", name, dims.nbDims, bytes);
    }
    cudaStream_t stream;
    cudaStreamCreate(&stream);
    cudaEvent_t start, stop;
    cudaEventCreate(&start);
    cudaEventCreate(&stop);
    for (int i = 0; i < 10; ++i) ctx->enqueueV3(stream);  // warm-up
    std::vector<float> ms;
    for (int i = 0; i < iterations; ++i) {
        cudaEventRecord(start, stream);
        if (!ctx->enqueueV3(stream)) return fail("enqueueV3 failed");
        cudaEventRecord(stop, stream);
        cudaEventSynchronize(stop);
        float t = 0.f;
        cudaEventElapsedTime(&t, start, stop);
        ms.push_back(t);
    }
    std::sort(ms.begin(), ms.end());
    std::printf("GPU compute: min %.3f ms, median %.3f ms, max %.3f ms over %d runs\n", ms.front(),
                ms[ms.size() / 2], ms.back(), iterations);
    for (void* p : buffers) cudaFree(p);
    cudaStreamDestroy(stream);
    return 0;
}
