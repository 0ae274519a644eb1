#include "sidecar.h"

#include "error.h"
#include "json.h"

#include <filesystem>

namespace asap {
namespace app {

namespace {

std::string text(Json const& obj, char const* key, std::string const& path) {
    Json const* v = obj.find(key);
    if (!v || v->isNull()) return "";
    return v->asString(Json::memberPath(path, key));
}

}  // namespace

EngineSidecar EngineSidecar::read(std::string const& enginePath) {
    EngineSidecar s;
    s.path = enginePath + ".json";
    if (!std::filesystem::exists(s.path)) return s;
    Json const doc = Json::parseFile(s.path);
    std::string const root = s.path + ":";
    if (!doc.isObject()) throw Error(root + " the sidecar must be a JSON object");
    s.present = true;
    s.module = text(doc, "tensorrt_module", root);
    s.version = text(doc, "tensorrt_version", root);
    s.onnx = text(doc, "onnx", root);
    s.onnxSha256 = text(doc, "onnx_sha256", root);
    if (Json const* gpu = doc.find("gpu"); gpu && !gpu->isNull()) {
        std::string const gpuPath = Json::memberPath(root, "gpu");
        gpu->members(gpuPath);  // must be an object
        s.gpuName = text(*gpu, "name", gpuPath);
        s.computeCapability = text(*gpu, "compute_capability", gpuPath);
    }
    if (Json const* plugin = doc.find("plugin"); plugin && !plugin->isNull()) {
        std::string const pluginPath = Json::memberPath(root, "plugin");
        plugin->members(pluginPath);
        s.needsPlugin = text(*plugin, "kind", pluginPath) != "none";
    }
    return s;
}

std::string EngineSidecar::rebuildHint() const {
    return "rebuild it here: python -m asap_deploy.build " + (onnx.empty() ? std::string("MODEL.onnx") : onnx);
}

void checkSidecar(EngineSidecar const& s, std::string const& engineName, std::string const& trtVersion,
                  std::string const& gpuName, std::string const& computeCapability, bool pluginGiven) {
    if (!s.present) return;
    if (!s.module.empty() && s.module != "tensorrt")
        throw Error(engineName + " was built with " + s.module +
                    "; this application runs TensorRT "
                    "(libnvinfer) engines: build one with python -m asap_deploy.build --module tensorrt");
    // the bindings report a fourth (build) number; major.minor.patch decides plan compatibility
    bool const sameVersion = s.version.empty() || s.version == trtVersion || s.version.rfind(trtVersion + ".", 0) == 0;
    if (!sameVersion)
        throw Error(engineName + " was built with TensorRT " + s.version + ", this application runs TensorRT " +
                    trtVersion + "; engines only load in the version that built them: " + s.rebuildHint());
    if (!s.computeCapability.empty() && s.computeCapability != computeCapability)
        throw Error(engineName + " was built for " + s.gpuName + " (sm " + s.computeCapability + "), this GPU is " +
                    gpuName + " (sm " + computeCapability + "): " + s.rebuildHint() + " on this GPU");
    if (s.needsPlugin && !pluginGiven)
        throw Error(engineName +
                    " uses the ASAP_SpatialMLP plugin: pass --plugin "
                    "build/engines/libasap_trt_plugin.so (python -m asap_deploy.build_plugin "
                    "--tensorrt-root $TensorRT_ROOT builds it)");
}

}  // namespace app
}  // namespace asap
