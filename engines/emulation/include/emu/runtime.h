// The part of the CUDA runtime API the kernels' host code uses, run on the CPU: device
// attributes (the opt-in shared-memory limit comes from ASAP_EMU_SMEM_OPTIN), function
// attributes, cudaLaunchKernelEx with the hardware's launch checks, and the error state.
#pragma once

#include <cstddef>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>

#include "core.h"

enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidDevice = 101,
    cudaErrorLaunchOutOfResources = 701,
};
typedef enum cudaError cudaError_t;

typedef struct CUstream_st* cudaStream_t;

enum cudaDeviceAttr {
    cudaDevAttrMaxThreadsPerBlock = 1,
    cudaDevAttrMaxSharedMemoryPerBlock = 8,
    cudaDevAttrMultiProcessorCount = 16,
    cudaDevAttrComputeCapabilityMajor = 75,
    cudaDevAttrComputeCapabilityMinor = 76,
    cudaDevAttrMaxSharedMemoryPerBlockOptin = 97,
};

enum cudaFuncAttribute {
    cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
};

struct cudaLaunchAttribute;

struct cudaLaunchConfig_t {
    dim3 gridDim;
    dim3 blockDim;
    size_t dynamicSmemBytes;
    cudaStream_t stream;
    cudaLaunchAttribute* attrs;
    unsigned int numAttrs;
};

cudaError_t cudaGetDevice(int* device);
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device);
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
char const* cudaGetErrorString(cudaError_t error);

namespace emu {
// The build registers each kernel's __launch_bounds__ (read from the source) by base name.
void register_launch_bounds(char const* kernel, int max_threads);
cudaError_t func_set_attribute(void const* func, cudaFuncAttribute attr, int value);
cudaError_t launch(cudaLaunchConfig_t const* config, void const* func, std::function<void()> const& body);
}  // namespace emu

template <class T>
cudaError_t cudaFuncSetAttribute(T* entry, cudaFuncAttribute attr, int value) {
    return emu::func_set_attribute(reinterpret_cast<void const*>(entry), attr, value);
}

// Every emulated thread calls the kernel with its own copy of the arguments, as CUDA passes
// kernel parameters by value.
template <class... ExpTypes, class... ActTypes>
cudaError_t cudaLaunchKernelEx(cudaLaunchConfig_t const* config, void (*kernel)(ExpTypes...), ActTypes&&... args) {
    std::tuple<std::decay_t<ExpTypes>...> const params(std::forward<ActTypes>(args)...);
    return emu::launch(config, reinterpret_cast<void const*>(kernel),
                       [kernel, &params]() { std::apply(kernel, params); });
}
