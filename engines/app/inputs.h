// Label PNGs -> the generator's input tensors for one image, as the authors' loader and
// preprocess_input prepare them, in the layout the export's manifest declares:
//   label        float32/float16 1 x C x H x W one-hot (+ don't care) (+ instance edges, last)
//   label_map    int32 1 x 1 x H x W class ids (the graph maps 255 and builds the one-hot)
//   instance_map int32 1 x 1 x H x W instance ids (the graph computes the edges)
#pragma once

#include "labels.h"
#include "manifest.h"
#include "tensor.h"

#include <string>
#include <vector>

namespace asap {
namespace app {

struct LabelInputs {
    IdMap labels;
    IdMap instances;  // empty (0 x 0) when the model takes no instance map
    bool hasInstances = false;
    std::vector<std::string> notes;  // resizes and ignored files, for the application to print
};

// Reads the PNGs, resizes them to the manifest's H x W (Pillow NEAREST) and checks the class ids.
// `instancePath` may be empty; it is required when the model uses instance edges.
LabelInputs loadLabelInputs(Manifest const& manifest, std::string const& labelPath, std::string const& instancePath);

// One HostTensor per input of `graph` (batch 1), in the graph's order.
std::vector<HostTensor> makeInputs(Manifest const& manifest, GraphFile const& graph, LabelInputs const& maps);

}  // namespace app
}  // namespace asap
