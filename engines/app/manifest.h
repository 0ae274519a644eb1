// The export's manifest.json (asap_deploy/onnx_export/manifest.py), read for what an application
// needs: resolution, label layout, and the interface of every graph, so that an engine can be
// checked against the export it came from before any data is fed to it.
#pragma once

#include "labels.h"
#include "tensor.h"

#include <string>
#include <vector>

namespace asap {
namespace app {

struct GraphFile {
    std::string file;       // e.g. "asapnet_plugin_fp16.onnx"
    std::string graph;      // g | mlp | asapnet | asapnet_plugin
    std::string precision;  // fp32 | fp16
    std::string sha256;
    std::vector<TensorSpec> inputs;
    std::vector<TensorSpec> outputs;

    bool isGenerator() const { return graph == "asapnet" || graph == "asapnet_plugin"; }
};

struct Manifest {
    std::string path;
    int height = 0;
    int width = 0;
    std::string inputMode;  // "one-hot" (float `label`) or "labels" (int32 `label_map` [+ `instance_map`])
    LabelSpec labels;
    int outputNc = 0;
    std::vector<GraphFile> files;

    // Throws Error naming the file and the missing or malformed field.
    static Manifest read(std::string const& path);
};

// What an engine declares for one I/O tensor (the runner reads it from TensorRT).
struct EngineTensor {
    std::string name;
    bool isInput = true;
    DType dtype = DType::kFloat32;
    std::vector<int64_t> dims;  // -1 for a dynamic axis
};

// Empty when the engine's I/O is the graph's (names, types, shapes; a dynamic batch axis matches
// "batch"), else the first difference in words.
std::string interfaceDifference(GraphFile const& graph, std::vector<EngineTensor> const& io);

// The whole-generator graph (asapnet / asapnet_plugin) the engine was built from: the file whose
// SHA-256 is `onnxSha256` (from the engine's sidecar) when given, else the first generator graph
// with the engine's interface. Throws Error saying what differs and what to do.
GraphFile const& matchEngine(Manifest const& manifest, std::vector<EngineTensor> const& io,
                             std::string const& onnxSha256, std::string const& engineName);

}  // namespace app
}  // namespace asap
