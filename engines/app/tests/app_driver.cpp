// Each step of asap_app on the command line, writing .npy files, so that tests/test_cpp_app.py can
// compare the C++ preprocessing and postprocessing with PIL and PyTorch on the same PNGs.
//
//   asap_app_driver inputs MANIFEST GRAPH_FILE LABEL.png INSTANCE.png|- OUT_DIR   -> OUT_DIR/<input>.npy
//   asap_app_driver resize label|instance IN.png WIDTH HEIGHT OUT.npy               -> int32 ids
//   asap_app_driver image float32|float16 C H W RAW_CHW OUT.png                     -> "nan N" on stdout
//   asap_app_driver half RAW_FLOAT32 OUT_RAW_FLOAT16
//   asap_app_driver match MANIFEST SHA256|- NAME:in|out:DTYPE:D0xD1x...           -> matched file on stdout
// Errors: "error: ..." on stderr, exit code 2 (as the application).
#include "error.h"
#include "half.h"
#include "image_output.h"
#include "inputs.h"
#include "labels.h"
#include "manifest.h"
#include "png_io.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

using namespace asap::app;

namespace {

char const* npyDescr(DType t) {
    switch (t) {
        case DType::kFloat32:
            return "<f4";
        case DType::kFloat16:
            return "<f2";
        case DType::kInt32:
            return "<i4";
        case DType::kUint8:
            return "|u1";
    }
    return "?";
}

void writeNpy(std::string const& path, DType dtype, std::vector<int64_t> const& shape, void const* data, size_t bytes) {
    std::string header = std::string("{'descr': '") + npyDescr(dtype) + "', 'fortran_order': False, 'shape': (";
    for (size_t i = 0; i < shape.size(); ++i)
        header += std::to_string(shape[i]) + (shape.size() == 1 || i + 1 < shape.size() ? ", " : "");
    header += "), }";
    while ((10 + header.size() + 1) % 64) header += ' ';
    header += '\n';
    std::ofstream out(path, std::ios::binary);
    out.write("\x93NUMPY\x01\x00", 8);
    uint16_t const len = static_cast<uint16_t>(header.size());
    char const le[2] = {static_cast<char>(len & 0xff), static_cast<char>(len >> 8)};
    out.write(le, 2);
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    out.write(static_cast<char const*>(data), static_cast<std::streamsize>(bytes));
    if (!out) throw Error(path + ": write failed");
}

std::vector<char> readAll(std::string const& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(path + ": cannot open");
    return std::vector<char>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

int usage() {
    std::fprintf(stderr, "usage: asap_app_driver inputs|resize|image|half|match ... (see the source)\n");
    return 2;
}

int run(int argc, char** argv) {
    std::string const cmd = argc > 1 ? argv[1] : "";
    if (cmd == "inputs" && argc == 7) {
        Manifest const m = Manifest::read(argv[2]);
        GraphFile const* graph = nullptr;
        for (auto const& g : m.files)
            if (g.file == argv[3]) graph = &g;
        if (!graph) throw Error(std::string(argv[3]) + " is not a file of " + m.path);
        std::string const instance = std::strcmp(argv[5], "-") ? argv[5] : "";
        LabelInputs const maps = loadLabelInputs(m, argv[4], instance);
        for (auto const& n : maps.notes) std::fprintf(stderr, "note: %s\n", n.c_str());
        for (HostTensor const& t : makeInputs(m, *graph, maps))
            writeNpy(std::string(argv[6]) + "/" + t.spec.name + ".npy", t.spec.dtype, t.spec.shape, t.bytes.data(),
                     t.bytes.size());
        return 0;
    }
    if (cmd == "resize" && argc == 7) {
        std::string const kind = argv[2];
        IdMap const src = kind == "label" ? loadLabelMap(argv[3]) : loadInstanceMap(argv[3]);
        IdMap const out = resizeNearest(src, std::stoi(argv[4]), std::stoi(argv[5]));
        writeNpy(argv[6], DType::kInt32, {out.height, out.width}, out.ids.data(), out.ids.size() * 4);
        return 0;
    }
    if (cmd == "image" && argc == 8) {
        DType const dtype = parseDtype(argv[2], "dtype");
        int const c = std::stoi(argv[3]), h = std::stoi(argv[4]), w = std::stoi(argv[5]);
        std::vector<char> const raw = readAll(argv[6]);
        if (raw.size() != static_cast<size_t>(c) * h * w * elementSize(dtype))
            throw Error(std::string(argv[6]) + ": size does not match the shape");
        Image8 const img = imageFromTensor(raw.data(), dtype, c, h, w);
        writePng(argv[7], img.pixels.data(), img.width, img.height, img.channels);
        std::printf("nan %zu\n", img.nanCount);
        return 0;
    }
    if (cmd == "half" && argc == 4) {
        std::vector<char> const raw = readAll(argv[2]);
        std::vector<uint16_t> out(raw.size() / 4);
        for (size_t i = 0; i < out.size(); ++i) {
            float f;
            std::memcpy(&f, raw.data() + 4 * i, 4);
            out[i] = floatToHalf(f);
        }
        std::ofstream(argv[3], std::ios::binary)
            .write(reinterpret_cast<char const*>(out.data()), static_cast<std::streamsize>(out.size() * 2));
        return 0;
    }
    if (cmd == "match" && argc >= 5) {
        Manifest const m = Manifest::read(argv[2]);
        std::vector<EngineTensor> io;
        for (int i = 4; i < argc; ++i) {  // NAME:in|out:DTYPE:D0xD1x...
            std::string const spec = argv[i];
            size_t const a = spec.find(':'), b = spec.find(':', a + 1), c = spec.find(':', b + 1);
            if (a == std::string::npos || b == std::string::npos || c == std::string::npos) return usage();
            EngineTensor t;
            t.name = spec.substr(0, a);
            t.isInput = spec.substr(a + 1, b - a - 1) == "in";
            t.dtype = parseDtype(spec.substr(b + 1, c - b - 1), "dtype");
            std::string dims = spec.substr(c + 1);
            for (size_t p = 0; p <= dims.size();) {
                size_t const x = dims.find('x', p);
                t.dims.push_back(std::stoll(dims.substr(p, x == std::string::npos ? std::string::npos : x - p)));
                if (x == std::string::npos) break;
                p = x + 1;
            }
            io.push_back(t);
        }
        std::printf("%s\n", matchEngine(m, io, std::strcmp(argv[3], "-") ? argv[3] : "", "engine.plan").file.c_str());
        return 0;
    }
    return usage();
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (Error const& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 2;
    }
}
