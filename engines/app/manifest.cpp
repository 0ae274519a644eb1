#include "manifest.h"

#include "error.h"
#include "json.h"

namespace asap {
namespace app {

namespace {

constexpr int kMaxClasses = 4096;  // far above any dataset; guards against nonsense values

int intField(Json const& obj, std::string const& key, std::string const& path, int64_t lo, int64_t hi) {
    int64_t const v = obj.at(key, path).asInt(Json::memberPath(path, key));
    if (v < lo || v > hi)
        throw Error(Json::memberPath(path, key) + " is " + std::to_string(v) + "; expected " + std::to_string(lo) +
                    ".." + std::to_string(hi));
    return static_cast<int>(v);
}

TensorSpec tensorSpec(Json const& t, std::string const& path) {
    TensorSpec spec;
    spec.name = t.at("name", path).asString(Json::memberPath(path, "name"));
    spec.dtype =
        parseDtype(t.at("dtype", path).asString(Json::memberPath(path, "dtype")), Json::memberPath(path, "dtype"));
    std::string const shapePath = Json::memberPath(path, "shape");
    auto const& dims = t.at("shape", path).items(shapePath);
    for (size_t i = 0; i < dims.size(); ++i) {
        std::string const dimPath = shapePath + "[" + std::to_string(i) + "]";
        if (dims[i].isString()) {
            if (i != 0)
                throw Error(dimPath + " is the dynamic axis \"" + dims[i].asString(dimPath) +
                            "\"; only the batch axis (first) may be dynamic");
            spec.shape.push_back(-1);
        } else {
            int64_t const d = dims[i].asInt(dimPath);
            if (d <= 0) throw Error(dimPath + " is " + std::to_string(d) + "; dimensions are positive");
            spec.shape.push_back(d);
        }
    }
    return spec;
}

std::vector<TensorSpec> tensorList(Json const& obj, std::string const& key, std::string const& path) {
    std::vector<TensorSpec> out;
    std::string const listPath = Json::memberPath(path, key);
    auto const& items = obj.at(key, path).items(listPath);
    for (size_t i = 0; i < items.size(); ++i)
        out.push_back(tensorSpec(items[i], listPath + "[" + std::to_string(i) + "]"));
    return out;
}

std::string describeIO(std::vector<TensorSpec> const& inputs, std::vector<TensorSpec> const& outputs) {
    auto list = [](std::vector<TensorSpec> const& ts) {
        std::string s;
        for (auto const& t : ts)
            s += (s.empty() ? "" : ", ") + t.name + " " + dtypeName(t.dtype) + " " + shapeString(t.shape);
        return s.empty() ? std::string("none") : s;
    };
    return "inputs " + list(inputs) + "; outputs " + list(outputs);
}

}  // namespace

Manifest Manifest::read(std::string const& path) {
    Json const doc = Json::parseFile(path);
    std::string const root = path + ":";
    if (!doc.isObject()) throw Error(root + " the manifest must be a JSON object");
    Manifest m;
    m.path = path;
    m.height = intField(doc, "height", root, 1, 65536);
    m.width = intField(doc, "width", root, 1, 65536);
    m.inputMode = doc.at("input_mode", root).asString(Json::memberPath(root, "input_mode"));
    if (m.inputMode != "one-hot" && m.inputMode != "labels")
        throw Error(path + ": input_mode \"" + m.inputMode +
                    "\" is not supported by this app, which "
                    "feeds label maps (exports made with --input one-hot or --input labels)");
    std::string const cfgPath = Json::memberPath(root, "config");
    Json const& cfg = doc.at("config", root);
    m.labels.labelNc = intField(cfg, "label_nc", cfgPath, 1, kMaxClasses);
    m.labels.dontCare =
        cfg.at("contain_dontcare_label", cfgPath).asBool(Json::memberPath(cfgPath, "contain_dontcare_label"));
    m.labels.instanceEdge = cfg.at("instance_edge", cfgPath).asBool(Json::memberPath(cfgPath, "instance_edge"));
    m.outputNc = intField(cfg, "output_nc", cfgPath, 1, 64);
    std::string const filesPath = Json::memberPath(root, "files");
    auto const& files = doc.at("files", root).items(filesPath);
    for (size_t i = 0; i < files.size(); ++i) {
        std::string const p = filesPath + "[" + std::to_string(i) + "]";
        GraphFile g;
        g.file = files[i].at("file", p).asString(Json::memberPath(p, "file"));
        // the manifest may index other files too (engines, sidecars); ONNX graphs are what we need
        if (g.file.size() < 5 || g.file.compare(g.file.size() - 5, 5, ".onnx") != 0) continue;
        g.graph = files[i].at("graph", p).asString(Json::memberPath(p, "graph"));
        g.precision = files[i].at("precision", p).asString(Json::memberPath(p, "precision"));
        g.sha256 = files[i].at("sha256", p).asString(Json::memberPath(p, "sha256"));
        g.inputs = tensorList(files[i], "inputs", p);
        g.outputs = tensorList(files[i], "outputs", p);
        m.files.push_back(std::move(g));
    }
    bool anyGenerator = false;
    for (auto const& g : m.files) anyGenerator = anyGenerator || g.isGenerator();
    if (!anyGenerator)
        throw Error(path +
                    ": lists no whole-generator graph (asapnet or asapnet_plugin); re-export "
                    "with python -m asap_deploy.export");
    return m;
}

std::string interfaceDifference(GraphFile const& graph, std::vector<EngineTensor> const& io) {
    auto check = [&](std::vector<TensorSpec> const& expected, bool inputs) -> std::string {
        char const* kind = inputs ? "input" : "output";
        for (auto const& e : expected) {
            EngineTensor const* t = nullptr;
            for (auto const& x : io)
                if (x.isInput == inputs && x.name == e.name) t = &x;
            if (!t) return std::string("the engine has no ") + kind + " " + e.name;
            if (t->dtype != e.dtype)
                return std::string(kind) + " " + e.name + " is " + dtypeName(t->dtype) + " in the engine, " +
                       dtypeName(e.dtype) + " in " + graph.file;
            bool same = t->dims.size() == e.shape.size();
            for (size_t i = 0; same && i < e.shape.size(); ++i) {
                bool const batchAxis = i == 0 && e.shape[0] < 0;
                same = batchAxis ? (t->dims[0] < 0 || t->dims[0] >= 1) : t->dims[i] == e.shape[i];
            }
            if (!same)
                return std::string(kind) + " " + e.name + " is " + shapeString(t->dims) + " in the engine, " +
                       shapeString(e.shape) + " in " + graph.file;
        }
        for (auto const& x : io) {
            if (x.isInput != inputs) continue;
            bool known = false;
            for (auto const& e : expected) known = known || e.name == x.name;
            if (!known) return std::string("the engine has an extra ") + kind + " " + x.name;
        }
        return "";
    };
    std::string diff = check(graph.inputs, true);
    return diff.empty() ? check(graph.outputs, false) : diff;
}

GraphFile const& matchEngine(Manifest const& manifest, std::vector<EngineTensor> const& io,
                             std::string const& onnxSha256, std::string const& engineName) {
    if (!onnxSha256.empty()) {
        GraphFile const* built = nullptr;
        for (auto const& g : manifest.files)
            if (g.sha256 == onnxSha256) built = &g;
        if (!built)
            throw Error(engineName +
                        " was built from an ONNX file that is not part of this export "
                        "(sha256 " +
                        onnxSha256.substr(0, 12) + "... is not in " + manifest.path +
                        "): pass the manifest.json of the export the engine was built from");
        if (!built->isGenerator())
            throw Error(engineName + " was built from " + built->file +
                        ", one stage of the generator; "
                        "this app runs whole-generator engines: build asapnet_plugin_fp16.onnx or "
                        "asapnet_fp16.onnx (python -m asap_deploy.build)");
        std::string const diff = interfaceDifference(*built, io);
        if (!diff.empty())
            throw Error(engineName + " does not have the interface of " + built->file +
                        " it was built "
                        "from (" +
                        diff + "): the engine or its sidecar was replaced; rebuild the engine");
        return *built;
    }
    GraphFile const* first = nullptr;
    std::string firstDiff;
    for (auto const& g : manifest.files) {
        if (!g.isGenerator()) continue;
        std::string const diff = interfaceDifference(g, io);
        if (diff.empty()) return g;
        if (!first) {
            first = &g;
            firstDiff = diff;
        }
    }
    std::vector<TensorSpec> ins, outs;
    for (auto const& t : io) (t.isInput ? ins : outs).push_back(TensorSpec{t.name, t.dtype, t.dims});
    throw Error(engineName + " matches no generator graph of " + manifest.path + " (engine " + describeIO(ins, outs) +
                "; " + first->file + ": " + firstDiff + "): was it built from another export?");
}

}  // namespace app
}  // namespace asap
