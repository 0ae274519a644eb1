#include "labels.h"

#include "error.h"
#include "half.h"
#include "png_io.h"

#include <algorithm>

namespace asap {
namespace app {

namespace {

IdMap fromRaster(Raster const& r, std::string const& path) {
    IdMap m;
    m.width = r.width;
    m.height = r.height;
    m.source = path;
    m.ids.assign(r.samples.begin(), r.samples.end());
    return m;
}

}  // namespace

IdMap loadLabelMap(std::string const& path) {
    Raster const r = readPng(path);
    if (r.channels != 1)
        throw Error(path + " is " + r.describe() +
                    "; a label map holds one class id per pixel "
                    "(8-bit grayscale or palette PNG): convert colours to class ids first");
    if (r.bitDepth == 16)
        throw Error(path +
                    " is 16-bit grayscale; a label map is an 8-bit grayscale or palette PNG "
                    "of class ids (the authors' loader would multiply 16-bit values by 255)");
    return fromRaster(r, path);
}

IdMap loadInstanceMap(std::string const& path) {
    Raster const r = readPng(path);
    if (r.channels != 1)
        throw Error(path + " is " + r.describe() +
                    "; an instance map holds one instance id per "
                    "pixel (8/16-bit grayscale PNG, like Cityscapes' *_instanceIds.png)");
    return fromRaster(r, path);
}

namespace {

// Source index of every output column (or row); -1 marks an output outside the source, which
// Pillow fills with 0 (it cannot happen for a plain resize, kept for exactness).
std::vector<int> nearestTable(int in, int out) {
    std::vector<int> table(static_cast<size_t>(out));
    double const step = static_cast<double>(in) / out;
    double pos = step * 0.5;
    for (int i = 0; i < out; ++i) {
        int const src = pos < 0.0 ? -1 : static_cast<int>(pos);
        table[i] = src < in ? src : -1;
        pos += step;
    }
    return table;
}

}  // namespace

IdMap resizeNearest(IdMap const& map, int width, int height) {
    if (width <= 0 || height <= 0)
        throw Error("resize: invalid size " + std::to_string(width) + "x" + std::to_string(height));
    if (map.width == width && map.height == height) return map;
    std::vector<int> const xs = nearestTable(map.width, width), ys = nearestTable(map.height, height);
    IdMap out;
    out.width = width;
    out.height = height;
    out.source = map.source;
    out.ids.assign(static_cast<size_t>(width) * height, 0);
    for (int y = 0; y < height; ++y) {
        if (ys[y] < 0) continue;
        int32_t const* row = map.ids.data() + static_cast<size_t>(ys[y]) * map.width;
        int32_t* dst = out.ids.data() + static_cast<size_t>(y) * width;
        for (int x = 0; x < width; ++x)
            if (xs[x] >= 0) dst[x] = row[xs[x]];
    }
    return out;
}

std::string LabelSpec::describe() const {
    return "label_nc " + std::to_string(labelNc) + (dontCare ? " (+don't care)" : "") +
           (instanceEdge ? " (+instance edges)" : "");
}

void checkClassIds(IdMap const& labels, LabelSpec const& spec) {
    int const valid = spec.classChannels();
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < labels.ids.size(); ++i) {
        int32_t const id = labels.ids[i];
        if ((id >= 0 && id < valid) || id == 255) continue;
        if (bad++ == 0) first = i;
    }
    if (!bad) return;
    int const x = static_cast<int>(first % labels.width), y = static_cast<int>(first / labels.width);
    std::string allowed = "ids 0.." + std::to_string(spec.labelNc - 1);
    if (spec.dontCare)
        allowed += ", " + std::to_string(spec.labelNc) + " and 255 = don't care";
    else
        allowed += " and 255 (no don't-care channel: an all-zero one-hot vector)";
    throw Error(labels.source + ": class id " + std::to_string(labels.ids[first]) + " at pixel (x " +
                std::to_string(x) + ", y " + std::to_string(y) + ")" +
                (bad > 1 ? " and " + std::to_string(bad - 1) + " more pixels" : std::string()) +
                " is not a class of this model (" + allowed +
                "): is this a label map of the dataset the model was trained on?");
}

std::vector<uint8_t> instanceEdges(IdMap const& m) {
    int const w = m.width, h = m.height;
    std::vector<uint8_t> edge(static_cast<size_t>(w) * h, 0);
    for (int y = 0; y < h; ++y) {
        int32_t const* row = m.ids.data() + static_cast<size_t>(y) * w;
        uint8_t* e = edge.data() + static_cast<size_t>(y) * w;
        for (int x = 0; x + 1 < w; ++x) {
            if (row[x] != row[x + 1]) e[x] = e[x + 1] = 1;
        }
        if (y + 1 < h) {
            int32_t const* below = row + w;
            uint8_t* eb = e + w;
            for (int x = 0; x < w; ++x)
                if (row[x] != below[x]) e[x] = eb[x] = 1;
        }
    }
    return edge;
}

namespace {

template <typename T>
void encodeOneHot(IdMap const& labels, IdMap const* instances, LabelSpec const& spec, T* out, T zero, T one) {
    size_t const plane = static_cast<size_t>(labels.width) * labels.height;
    if (labels.ids.size() != plane) throw Error(labels.source + ": inconsistent label map");
    int const classes = spec.classChannels();
    std::fill(out, out + plane * spec.channels(), zero);
    for (size_t i = 0; i < plane; ++i) {
        int32_t id = labels.ids[i];
        if (id == 255) id = spec.labelNc;
        if (id >= 0 && id < classes) out[static_cast<size_t>(id) * plane + i] = one;
    }
    if (!spec.instanceEdge) return;
    if (!instances)
        throw Error("this model uses instance edges (" + spec.describe() +
                    "): pass an instance map "
                    "(--instance, e.g. Cityscapes' *_instanceIds.png)");
    if (instances->width != labels.width || instances->height != labels.height)
        throw Error(instances->source + ": instance map is " + std::to_string(instances->width) + "x" +
                    std::to_string(instances->height) + " but the label map is " + std::to_string(labels.width) + "x" +
                    std::to_string(labels.height));
    std::vector<uint8_t> const edges = instanceEdges(*instances);
    T* edgePlane = out + static_cast<size_t>(classes) * plane;
    for (size_t i = 0; i < plane; ++i)
        if (edges[i]) edgePlane[i] = one;
}

}  // namespace

void encodeOneHotFloat(IdMap const& labels, IdMap const* instances, LabelSpec const& spec, float* out) {
    encodeOneHot<float>(labels, instances, spec, out, 0.f, 1.f);
}

void encodeOneHotHalf(IdMap const& labels, IdMap const* instances, LabelSpec const& spec, uint16_t* out) {
    encodeOneHot<uint16_t>(labels, instances, spec, out, floatToHalf(0.f), floatToHalf(1.f));
}

}  // namespace app
}  // namespace asap
