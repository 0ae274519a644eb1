#include "inputs.h"

#include "error.h"

#include <cstring>

namespace asap {
namespace app {

namespace {

std::string size(int w, int h) { return std::to_string(w) + "x" + std::to_string(h); }

IdMap fitted(IdMap map, Manifest const& m, std::vector<std::string>& notes) {
    if (map.width == m.width && map.height == m.height) return map;
    notes.push_back(map.source + ": " + size(map.width, map.height) + " resized to the model's " +
                    size(m.width, m.height) + " (nearest neighbour, as the authors' loader)");
    return resizeNearest(map, m.width, m.height);
}

void expectShape(TensorSpec const& t, std::vector<int64_t> const& shape, GraphFile const& g, Manifest const& m,
                 std::string const& why) {
    bool same = t.shape.size() == shape.size();
    for (size_t i = 1; same && i < shape.size(); ++i) same = t.shape[i] == shape[i];
    if (!same)
        throw Error(m.path + ": " + g.file + " input " + t.name + " is " + shapeString(t.shape) + " but " + why +
                    " gives " + shapeString(shape) + "; the manifest is inconsistent, re-export");
}

}  // namespace

LabelInputs loadLabelInputs(Manifest const& manifest, std::string const& labelPath, std::string const& instancePath) {
    LabelInputs in;
    in.labels = fitted(loadLabelMap(labelPath), manifest, in.notes);
    checkClassIds(in.labels, manifest.labels);
    if (manifest.labels.instanceEdge) {
        if (instancePath.empty())
            throw Error("this model uses instance edges (" + manifest.labels.describe() +
                        "): pass its "
                        "instance map with --instance (e.g. Cityscapes' *_instanceIds.png)");
        in.instances = fitted(loadInstanceMap(instancePath), manifest, in.notes);
        in.hasInstances = true;
    } else if (!instancePath.empty()) {
        in.notes.push_back(instancePath + ": ignored, this model does not use instance edges");
    }
    return in;
}

std::vector<HostTensor> makeInputs(Manifest const& m, GraphFile const& g, LabelInputs const& maps) {
    std::vector<HostTensor> out;
    int64_t const H = m.height, W = m.width;
    size_t const plane = static_cast<size_t>(H) * W;
    if (maps.labels.width != W || maps.labels.height != H)
        throw Error("the label map must be resized to the model's size first (loadLabelInputs)");
    for (TensorSpec const& spec : g.inputs) {
        HostTensor t;
        t.spec = spec;
        if (!t.spec.shape.empty() && t.spec.shape[0] < 0) t.spec.shape[0] = 1;
        if (spec.name == "label") {
            expectShape(spec, {-1, m.labels.channels(), H, W}, g, m, m.labels.describe());
            t.bytes.resize(elementCount(t.spec.shape) * elementSize(spec.dtype));
            IdMap const* inst = maps.hasInstances ? &maps.instances : nullptr;
            if (spec.dtype == DType::kFloat32)
                encodeOneHotFloat(maps.labels, inst, m.labels, reinterpret_cast<float*>(t.bytes.data()));
            else if (spec.dtype == DType::kFloat16)
                encodeOneHotHalf(maps.labels, inst, m.labels, reinterpret_cast<uint16_t*>(t.bytes.data()));
            else
                throw Error(m.path + ": " + g.file + " input label is " + dtypeName(spec.dtype) +
                            "; a one-hot label is float32 or float16");
        } else if (spec.name == "label_map" || spec.name == "instance_map") {
            expectShape(spec, {-1, 1, H, W}, g, m, "the export's resolution");
            if (spec.dtype != DType::kInt32)
                throw Error(m.path + ": " + g.file + " input " + spec.name + " is " + dtypeName(spec.dtype) +
                            "; expected int32 ids");
            bool const instances = spec.name == "instance_map";
            if (instances && !maps.hasInstances)
                throw Error(g.file +
                            " takes an instance map: pass it with --instance (e.g. Cityscapes' "
                            "*_instanceIds.png)");
            IdMap const& ids = instances ? maps.instances : maps.labels;
            t.bytes.resize(plane * sizeof(int32_t));
            std::memcpy(t.bytes.data(), ids.ids.data(), t.bytes.size());
        } else {
            throw Error(m.path + ": " + g.file + " has an input named " + spec.name +
                        "; this app feeds "
                        "label, label_map and instance_map");
        }
        out.push_back(std::move(t));
    }
    return out;
}

}  // namespace app
}  // namespace asap
