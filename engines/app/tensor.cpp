#include "tensor.h"

#include "error.h"

namespace asap {
namespace app {

size_t elementSize(DType t) {
    switch (t) {
        case DType::kFloat32:
            return 4;
        case DType::kFloat16:
            return 2;
        case DType::kInt32:
            return 4;
        case DType::kUint8:
            return 1;
    }
    return 0;
}

char const* dtypeName(DType t) {
    switch (t) {
        case DType::kFloat32:
            return "float32";
        case DType::kFloat16:
            return "float16";
        case DType::kInt32:
            return "int32";
        case DType::kUint8:
            return "uint8";
    }
    return "?";
}

DType parseDtype(std::string const& name, std::string const& where) {
    for (DType t : {DType::kFloat32, DType::kFloat16, DType::kInt32, DType::kUint8})
        if (name == dtypeName(t)) return t;
    throw Error(where + ": unsupported element type \"" + name +
                "\" (this app handles float32, float16, int32 and uint8 tensors)");
}

std::string shapeString(std::vector<int64_t> const& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) {
        if (i) s += ", ";
        s += shape[i] < 0 ? std::string("batch") : std::to_string(shape[i]);
    }
    return s + "]";
}

size_t elementCount(std::vector<int64_t> const& shape) {
    size_t n = 1;
    for (int64_t d : shape) n *= d < 0 ? 1 : static_cast<size_t>(d);
    return n;
}

}  // namespace app
}  // namespace asap
