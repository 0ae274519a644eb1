// Label maps and instance maps as the authors' data loader prepares them
// (pix2pix_dataset.py, base_dataset.py, pix2pix_model.preprocess_input):
//   - the PNG is resized to the model's H x W with Pillow's NEAREST rule;
//   - class id 255 is the "don't care" id and becomes label_nc;
//   - one-hot channels: label_nc classes (+1 don't care) (+1 instance-edge channel, last);
//   - an instance edge marks a pixel whose id differs from a 4-neighbour's (both sides of each
//     boundary).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace asap {
namespace app {

struct IdMap {
    int width = 0;
    int height = 0;
    std::vector<int32_t> ids;  // height x width, row-major
    std::string source;        // file name, for messages
};

// 8-bit grayscale or palette PNG of class ids (1/2/4-bit grayscale is scaled to 8 bits as
// Pillow does). RGB, alpha and 16-bit PNGs are refused: the authors' loader would misread them.
IdMap loadLabelMap(std::string const& path);

// Grayscale (8 or 16-bit, as Cityscapes' *_instanceIds.png) or palette PNG of instance ids; only
// equality of ids matters (edges), so raw values are kept.
IdMap loadInstanceMap(std::string const& path);

// Pillow's Image.resize(size, NEAREST) for 8-bit and 32-bit images (ImagingScaleAffine): source
// x = floor(position), the position starting at in/out/2 and advancing by in/out in double
// precision, pixel after pixel. Accumulating differs from the closed form floor((x+0.5)*in/out)
// in the last bit at some ratios (never when out is a power of two), and that bit decides ties.
// Pillow >= 10.3 opens 16-bit PNGs as I;16 and resizes those with the closed form; the Pillow of
// the authors' time opened them as 32-bit I (python-pillow/Pillow#3041), i.e. with this rule,
// which is the one kept for instance maps. Same size: a copy.
IdMap resizeNearest(IdMap const& map, int width, int height);

struct LabelSpec {
    int labelNc = 0;
    bool dontCare = false;      // contain_dontcare_label: one more channel, index label_nc
    bool instanceEdge = false;  // edge channel appended last; needs an instance map

    int classChannels() const { return labelNc + (dontCare ? 1 : 0); }
    int channels() const { return classChannels() + (instanceEdge ? 1 : 0); }
    std::string describe() const;  // "label_nc 35 (+don't care) (+instance edges)"
};

// Every id must name a channel (0 .. classChannels-1) or be 255; throws naming the first pixel
// that is neither and how many there are.
void checkClassIds(IdMap const& labels, LabelSpec const& spec);

// 1 where a pixel differs from its left, right, upper or lower neighbour, else 0.
std::vector<uint8_t> instanceEdges(IdMap const& instances);

// C x H x W one-hot planes (C = spec.channels()) into `out`, as float32 or float16 (bits) values.
// 255 reads as label_nc; without a don't-care channel it gives an all-zero vector, as the
// exported graphs do (the authors' scatter_ would fail). Ids must have passed checkClassIds.
void encodeOneHotFloat(IdMap const& labels, IdMap const* instances, LabelSpec const& spec, float* out);
void encodeOneHotHalf(IdMap const& labels, IdMap const* instances, LabelSpec const& spec, uint16_t* out);

}  // namespace app
}  // namespace asap
