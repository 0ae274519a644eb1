// The JSON sidecar python -m asap_deploy.build writes beside an engine (ENGINE.plan.json): what
// the engine was built with and from, so that an application can refuse it with the reason and
// the fix before TensorRT fails with a less helpful message.
#pragma once

#include <string>

namespace asap {
namespace app {

struct EngineSidecar {
    bool present = false;
    std::string path;
    std::string module;   // "tensorrt" or "tensorrt_rtx"
    std::string version;  // as the Python bindings report it, e.g. "11.4.0.106"
    std::string onnx;     // the ONNX file it was built from
    std::string onnxSha256;
    std::string gpuName;
    std::string computeCapability;  // "8.9"; empty when built without a GPU
    bool needsPlugin = false;       // the engine holds an ASAP_SpatialMLP layer

    // ENGINE + ".json"; present == false when there is none. Throws Error if it is malformed.
    static EngineSidecar read(std::string const& enginePath);

    std::string rebuildHint() const;  // "rebuild it here: python -m asap_deploy.build X.onnx"
};

// Throws Error when the engine cannot run in this process: built by another TensorRT flavour or
// version (major.minor.patch), for a GPU of another compute capability, or it needs the plugin
// and none was given. `trtVersion` is "11.4.0"; `computeCapability` is "8.9".
void checkSidecar(EngineSidecar const& sidecar, std::string const& engineName, std::string const& trtVersion,
                  std::string const& gpuName, std::string const& computeCapability, bool pluginGiven);

}  // namespace app
}  // namespace asap
