// Host tensors exchanged with an engine: a name, an element type, a shape and the bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace asap {
namespace app {

enum class DType { kFloat32, kFloat16, kInt32, kUint8 };

size_t elementSize(DType t);
char const* dtypeName(DType t);                                       // numpy spelling, as in manifest.json
DType parseDtype(std::string const& name, std::string const& where);  // throws Error

// Shapes use -1 for the dynamic batch axis ("batch" in the manifest).
std::string shapeString(std::vector<int64_t> const& shape);  // "[batch, 7, 512, 96]"
size_t elementCount(std::vector<int64_t> const& shape);      // batch counts as 1

struct TensorSpec {
    std::string name;
    DType dtype = DType::kFloat32;
    std::vector<int64_t> shape;
};

struct HostTensor {
    TensorSpec spec;  // batch axis resolved to 1
    std::vector<uint8_t> bytes;
};

}  // namespace app
}  // namespace asap
