// Unit tests of asap_app (no CUDA, no TensorRT): ctest, or `asap_app_tests SCRATCH_DIR`.
// The Python tests (tests/test_cpp_app.py) compare the same code with PIL and PyTorch.
#include "error.h"
#include "half.h"
#include "image_output.h"
#include "inputs.h"
#include "json.h"
#include "labels.h"
#include "manifest.h"
#include "png_io.h"
#include "sidecar.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <string>
#include <vector>

using namespace asap::app;
namespace fs = std::filesystem;

namespace {

int gFailures = 0;
int gChecks = 0;

#define CHECK(cond)                                                                       \
    do {                                                                                  \
        ++gChecks;                                                                        \
        if (!(cond)) {                                                                    \
            ++gFailures;                                                                  \
            std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                                 \
    } while (0)

// The call must throw Error whose message contains `part` and is one line.
void checkThrows(std::function<void()> const& f, std::string const& part, int line) {
    ++gChecks;
    try {
        f();
    } catch (Error const& e) {
        std::string const msg = e.what();
        if (msg.find(part) == std::string::npos || msg.find('\n') != std::string::npos) {
            ++gFailures;
            std::fprintf(stderr, "line %d: message \"%s\" lacks \"%s\" (or is not one line)\n", line, msg.c_str(),
                         part.c_str());
        }
        return;
    } catch (std::exception const& e) {
        ++gFailures;
        std::fprintf(stderr, "line %d: threw a non-Error exception: %s\n", line, e.what());
        return;
    }
    ++gFailures;
    std::fprintf(stderr, "line %d: expected an Error containing \"%s\"\n", line, part.c_str());
}
#define CHECK_THROWS(expr, part) checkThrows([&] { expr; }, part, __LINE__)

fs::path gScratch;

std::string writeFile(std::string const& name, std::string const& content) {
    fs::path const p = gScratch / name;
    std::ofstream(p, std::ios::binary) << content;
    return p.string();
}

void testJson() {
    Json const doc = Json::parse(
        "{\"a\": [1, -2.5e3, true, false, null], \"s\": \"x\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\","
        " \"o\": {\"n\": 5.0, \"big\": 123456789012}, \"e\": {}, \"z\": []}");
    CHECK(doc.isObject());
    auto const& a = doc.at("a", "t").items("t.a");
    CHECK(a.size() == 5);
    CHECK(a[0].asInt("a0") == 1);
    CHECK(a[1].asDouble("a1") == -2500.0);
    CHECK(a[2].asBool("a2") && !a[3].asBool("a3") && a[4].isNull());
    CHECK(doc.at("s", "t").asString("t.s") == "x\"\\/\b\f\n\r\t\xc3\xa9\xf0\x9f\x98\x80");
    CHECK(doc.at("o", "t").at("n", "t.o").asInt("t.o.n") == 5);
    CHECK(doc.at("o", "t").at("big", "t.o").asInt("t.o.big") == 123456789012LL);
    CHECK(doc.at("e", "t").members("t.e").empty() && doc.at("z", "t").items("t.z").empty());
    CHECK(doc.find("missing") == nullptr);
    CHECK(Json::parse(" \n 42 \t").asInt("n") == 42);

    CHECK_THROWS(doc.at("missing", "m.json:"), "m.json: missing is missing");
    CHECK_THROWS(doc.at("o", "m.json:").at("q", "m.json: o"), "m.json: o.q is missing");
    CHECK_THROWS(doc.at("s", "t").asInt("t.s"), "t.s must be an integer, not a string");
    CHECK_THROWS(Json::parse("2.5").asInt("v"), "v must be an integer, not 2.5");
    CHECK_THROWS(Json::parse("1e400").asDouble("v"), "out of range");

    struct Bad {
        char const* text;
        char const* message;
    };
    Bad const bad[] = {
        {"", "line 1, column 1: expected a value, found the end"},
        {"{\"a\": 1,}", "expected a member name"},
        {"[1 2]", "expected ',' or ']'"},
        {"{\"a\" 1}", "expected ':'"},
        {"\"abc", "unterminated string"},
        {"\"a\\x\"", "invalid escape"},
        {"\"a\tb\"", "control character"},
        {"01", "unexpected text after the end"},
        {"1.", "expected a digit after '.'"},
        {"-", "expected a digit"},
        {"1e+", "digit in the exponent"},
        {"\"\\ud800\"", "unpaired UTF-16 surrogate"},
        {"\"\\udc00\"", "unpaired UTF-16 surrogate"},
        {"\"\\u12g4\"", "4 hex digits"},
        {"{\"a\": 1, \"a\": 2}", "duplicate member \"a\""},
        {"tru", "expected a value"},
        {"{}\n  x", "line 2, column 3: unexpected text"},
        {"NaN", "expected a value"},
    };
    for (auto const& b : bad) CHECK_THROWS(Json::parse(b.text, "doc.json"), b.message);
    CHECK_THROWS(Json::parse("[1,\n 2,, 3]", "doc.json"),
                 "doc.json: invalid JSON at line 2, column 4: expected a value, found ','");
    CHECK_THROWS(Json::parse(std::string(100, '[') + std::string(100, ']')), "nested deeper than 64");
    CHECK(Json::parse(std::string(60, '[') + std::string(60, ']')).isArray());
    CHECK_THROWS(Json::parseFile((gScratch / "nope.json").string()), "cannot open");
}

void testHalf() {
    int mismatches = 0;  // every half survives half -> float -> half (NaNs stay NaN)
    for (uint32_t h = 0; h < 0x10000u; ++h) {
        float const f = halfToFloat(static_cast<uint16_t>(h));
        bool const ok = std::isnan(f) ? std::isnan(halfToFloat(floatToHalf(f))) : floatToHalf(f) == h;
        if (!ok && mismatches++ < 3) std::fprintf(stderr, "  half 0x%04x -> %g -> 0x%04x\n", h, f, floatToHalf(f));
    }
    CHECK(mismatches == 0);
    CHECK(floatToHalf(1.0f) == 0x3c00 && floatToHalf(-2.0f) == 0xc000);
    CHECK(floatToHalf(65504.0f) == 0x7bff && floatToHalf(65519.99f) == 0x7bff);
    CHECK(floatToHalf(65520.0f) == 0x7c00 && floatToHalf(1e30f) == 0x7c00);
    CHECK(floatToHalf(std::ldexp(1.0f, -24)) == 0x0001);
    CHECK(floatToHalf(std::ldexp(1.0f, -25)) == 0x0000);  // tie to even
    CHECK(floatToHalf(std::ldexp(1.5f, -25)) == 0x0001);
    CHECK(floatToHalf(std::ldexp(3.0f, -25)) == 0x0002);         // 1.5 ulp: tie to even
    CHECK(floatToHalf(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);  // tie to even
    CHECK(floatToHalf(1.0f + std::ldexp(3.0f, -11)) == 0x3c02);
    CHECK(floatToHalf(std::ldexp(1023.5f, -24)) == 0x0400);  // rounds up into the normals
    CHECK(halfToFloat(0x0001) == std::ldexp(1.0f, -24) && halfToFloat(0x7bff) == 65504.0f);
}

IdMap makeMap(int w, int h, std::vector<int32_t> ids) {
    IdMap m;
    m.width = w;
    m.height = h;
    m.ids = std::move(ids);
    m.source = "map.png";
    return m;
}

void testResize() {
    IdMap const row = makeMap(4, 1, {10, 11, 12, 13});
    CHECK(resizeNearest(row, 2, 1).ids == (std::vector<int32_t>{11, 13}));
    CHECK(resizeNearest(row, 8, 1).ids == (std::vector<int32_t>{10, 10, 11, 11, 12, 12, 13, 13}));
    CHECK(resizeNearest(row, 3, 1).ids == (std::vector<int32_t>{10, 12, 13}));  // 4/3: 0.67, 2.0, 3.33
    CHECK(resizeNearest(row, 4, 1).ids == row.ids);
    IdMap const col = makeMap(1, 3, {1, 2, 3});
    CHECK(resizeNearest(col, 2, 2).ids == (std::vector<int32_t>{1, 1, 3, 3}));  // 3/2: 0.75, 2.25
    CHECK_THROWS(resizeNearest(col, 0, 2), "invalid size");
}

void testLabels() {
    IdMap const inst = makeMap(3, 3, {7, 7, 7, 7, 9, 7, 7, 7, 7});
    CHECK(instanceEdges(inst) == (std::vector<uint8_t>{0, 1, 0, 1, 1, 1, 0, 1, 0}));
    CHECK(instanceEdges(makeMap(2, 1, {1, 2})) == (std::vector<uint8_t>{1, 1}));
    CHECK(instanceEdges(makeMap(1, 1, {5})) == (std::vector<uint8_t>{0}));

    LabelSpec spec;
    spec.labelNc = 2;
    spec.dontCare = true;
    spec.instanceEdge = true;
    IdMap const labels = makeMap(3, 1, {0, 255, 1});
    IdMap const row = makeMap(3, 1, {4, 4, 5});
    checkClassIds(labels, spec);
    std::vector<float> oh(4 * 3);
    encodeOneHotFloat(labels, &row, spec, oh.data());
    CHECK(oh == (std::vector<float>{1, 0, 0,     // class 0
                                    0, 0, 1,     // class 1
                                    0, 1, 0,     // don't care (255)
                                    0, 1, 1}));  // edges
    std::vector<uint16_t> ohHalf(4 * 3);
    encodeOneHotHalf(labels, &row, spec, ohHalf.data());
    for (size_t i = 0; i < oh.size(); ++i) CHECK(halfToFloat(ohHalf[i]) == oh[i]);
    CHECK_THROWS(encodeOneHotFloat(labels, nullptr, spec, oh.data()), "pass an instance map");

    spec.instanceEdge = false;
    spec.dontCare = false;
    std::vector<float> plain(2 * 3);
    encodeOneHotFloat(labels, nullptr, spec, plain.data());
    CHECK(plain == (std::vector<float>{1, 0, 0, 0, 0, 1}));  // 255 without a channel: all zero
    CHECK_THROWS(checkClassIds(makeMap(3, 1, {0, 2, 2}), spec), "class id 2 at pixel (x 1, y 0) and 1 more pixels");
    spec.dontCare = true;
    checkClassIds(makeMap(3, 1, {0, 2, 255}), spec);  // 2 = label_nc names the don't-care channel
    CHECK_THROWS(checkClassIds(makeMap(2, 2, {0, 0, 0, 3}), spec), "class id 3 at pixel (x 1, y 1)");
}

void testImageOutput() {
    CHECK(imageValueToUint8(-1.f) == 0 && imageValueToUint8(1.f) == 255 && imageValueToUint8(0.f) == 127);
    CHECK(imageValueToUint8(-5.f) == 0 && imageValueToUint8(5.f) == 255);
    CHECK(imageValueToUint8(std::numeric_limits<float>::quiet_NaN()) == 0);
    CHECK(imageValueToUint8(std::numeric_limits<float>::infinity()) == 255);
    CHECK(imageValueToUint8(-std::numeric_limits<float>::infinity()) == 0);
    CHECK(imageValueToUint8(std::nextafter(1.f, 0.f)) == 255);              // x + 1 rounds to 2 in float32
    CHECK(imageValueToUint8(1.f - std::ldexp(1.f, -22)) == 254);            // 254.99997: truncated
    float const chw[2 * 3] = {-1.f, 1.f, 0.f, 0.5f, -0.5f, std::nanf("")};  // 1 x 2 x 3
    Image8 const gray = imageFromTensor(chw, DType::kFloat32, 1, 2, 3);
    CHECK(gray.pixels == (std::vector<uint8_t>{0, 255, 127, 191, 63, 0}) && gray.nanCount == 1);
    uint16_t halves[3 * 1 * 2];
    float const vals[6] = {-1.f, 1.f, 0.f, 0.25f, 0.5f, -0.75f};  // 3 channels x 1 x 2 pixels
    for (int i = 0; i < 6; ++i) halves[i] = floatToHalf(vals[i]);
    Image8 const rgb = imageFromTensor(halves, DType::kFloat16, 3, 1, 2);
    CHECK(rgb.pixels == (std::vector<uint8_t>{0, 127, 191, 255, 159, 31}));  // interleaved RGB
    CHECK_THROWS(imageFromTensor(chw, DType::kInt32, 3, 1, 2), "expected float32 or float16");
    CHECK_THROWS(imageFromTensor(chw, DType::kFloat32, 2, 1, 2), "needs 3 (RGB) or 1");
}

void testPng() {
    std::vector<uint8_t> rgb(5 * 4 * 3);
    for (size_t i = 0; i < rgb.size(); ++i) rgb[i] = static_cast<uint8_t>(i * 37);
    std::string const out = (gScratch / "nested" / "dir" / "rgb.png").string();
    writePng(out, rgb.data(), 5, 4, 3);
    Raster const r = readPng(out);
    CHECK(r.width == 5 && r.height == 4 && r.channels == 3 && r.bitDepth == 8 && !r.palette);
    CHECK(std::vector<uint8_t>(r.samples.begin(), r.samples.end()) == rgb);
    CHECK(r.describe() == "8-bit RGB");
    int leftovers = 0;
    for (auto const& e : fs::directory_iterator(gScratch / "nested" / "dir"))
        leftovers += e.path().filename().string()[0] == '.';
    CHECK(leftovers == 0);

    std::vector<uint8_t> gray = {0, 1, 2, 255, 254, 40};
    std::string const grayPath = (gScratch / "gray.png").string();
    writePng(grayPath, gray.data(), 3, 2, 1);
    IdMap const m = loadLabelMap(grayPath);
    CHECK(m.width == 3 && m.height == 2 && m.ids == (std::vector<int32_t>{0, 1, 2, 255, 254, 40}));
    CHECK_THROWS(loadLabelMap(out), "is 8-bit RGB; a label map holds one class id per pixel");
    CHECK_THROWS(loadInstanceMap(out), "is 8-bit RGB; an instance map");

    CHECK_THROWS(readPng((gScratch / "missing.png").string()), "missing.png: cannot open");
    CHECK_THROWS(readPng(writeFile("text.png", "hello, this is not a PNG")), "text.png: not a PNG file");
    std::ifstream whole(out, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(whole)), std::istreambuf_iterator<char>());
    CHECK_THROWS(readPng(writeFile("cut.png", bytes.substr(0, bytes.size() / 2))), "cut.png: damaged or truncated PNG");
    std::string corrupt = bytes;
    corrupt[20] ^= 0x55;  // inside IHDR: its CRC no longer matches
    CHECK_THROWS(readPng(writeFile("crc.png", corrupt)), "crc.png: damaged or truncated PNG (libpng:");
    CHECK_THROWS(writePng(gScratch.string(), gray.data(), 3, 2, 1), "is a folder");
    CHECK_THROWS(writePng((gScratch / "x.png").string(), gray.data(), 3, 2, 2), "grayscale or RGB");
}

std::string const kManifest = R"({
  "manifest_version": 1,
  "config": {"label_nc": 2, "contain_dontcare_label": true, "instance_edge": true, "output_nc": 3},
  "height": 2, "width": 3, "input_mode": "one-hot",
  "files": [
    {"file": "asapnet_plugin_fp16.plan", "kind": "engine"},
    {"file": "mlp.onnx", "graph": "mlp", "precision": "fp32", "sha256": "aaaa",
     "inputs": [{"name": "label", "dtype": "float32", "shape": ["batch", 4, 2, 3]},
                {"name": "params", "dtype": "float32", "shape": ["batch", 10, 1, 1]}],
     "outputs": [{"name": "image", "dtype": "float32", "shape": ["batch", 3, 2, 3]}]},
    {"file": "asapnet.onnx", "graph": "asapnet", "precision": "fp32", "sha256": "bbbb",
     "inputs": [{"name": "label", "dtype": "float32", "shape": ["batch", 4, 2, 3]}],
     "outputs": [{"name": "image", "dtype": "float32", "shape": ["batch", 3, 2, 3]}]},
    {"file": "asapnet_plugin_fp16.onnx", "graph": "asapnet_plugin", "precision": "fp16", "sha256": "cccc",
     "inputs": [{"name": "label", "dtype": "float16", "shape": ["batch", 4, 2, 3]}],
     "outputs": [{"name": "image", "dtype": "float16", "shape": ["batch", 3, 2, 3]}]}
  ]
})";

void testManifest() {
    Manifest const m = Manifest::read(writeFile("manifest.json", kManifest));
    CHECK(m.height == 2 && m.width == 3 && m.inputMode == "one-hot" && m.outputNc == 3);
    CHECK(m.labels.labelNc == 2 && m.labels.dontCare && m.labels.instanceEdge && m.labels.channels() == 4);
    CHECK(m.files.size() == 3 && m.files[2].inputs[0].dtype == DType::kFloat16);  // the .plan entry skipped
    CHECK(m.files[1].inputs[0].shape == (std::vector<int64_t>{-1, 4, 2, 3}));

    std::vector<EngineTensor> io = {{"label", true, DType::kFloat32, {-1, 4, 2, 3}},
                                    {"image", false, DType::kFloat32, {-1, 3, 2, 3}}};
    CHECK(matchEngine(m, io, "", "e.plan").file == "asapnet.onnx");
    CHECK(matchEngine(m, io, "bbbb", "e.plan").file == "asapnet.onnx");
    CHECK_THROWS(matchEngine(m, io, "cccc", "e.plan"),
                 "input label is float32 in the engine, float16 in asapnet_plugin_fp16.onnx");
    CHECK_THROWS(matchEngine(m, io, "aaaa", "e.plan"), "built from mlp.onnx, one stage of the generator");
    CHECK_THROWS(matchEngine(m, io, "dddd", "e.plan"), "not part of this export");
    std::vector<EngineTensor> wrong = io;
    wrong[0].dims = {-1, 5, 2, 3};
    CHECK_THROWS(matchEngine(m, wrong, "", "e.plan"),
                 "input label is [batch, 5, 2, 3] in the engine, [batch, 4, 2, 3] in asapnet.onnx");
    wrong = io;
    wrong[0].name = "label_map";
    CHECK_THROWS(matchEngine(m, wrong, "", "e.plan"), "the engine has no input label");
    wrong = io;
    wrong.push_back({"extra", false, DType::kFloat32, {1}});
    CHECK_THROWS(matchEngine(m, wrong, "", "e.plan"), "the engine has an extra output extra");
    io[0].dims[0] = 1;  // a static batch of 1 matches "batch"
    CHECK(matchEngine(m, io, "", "e.plan").file == "asapnet.onnx");

    auto variant = [&](std::string const& from, std::string const& to) {
        std::string text = kManifest;
        text.replace(text.find(from), from.size(), to);
        return writeFile("variant.json", text);
    };
    CHECK_THROWS(Manifest::read(variant("\"label_nc\": 2", "\"label_nc\": \"2\"")),
                 "config.label_nc must be an integer, not a string");
    CHECK_THROWS(Manifest::read(variant("\"label_nc\": 2,", "")), "config.label_nc is missing");
    CHECK_THROWS(Manifest::read(variant("\"height\": 2,", "")), "variant.json: height is missing");
    CHECK_THROWS(Manifest::read(variant("\"graph\": \"mlp\", ", "")), "variant.json: files[1].graph is missing");
    CHECK_THROWS(Manifest::read(variant("\"one-hot\"", "\"rgb\"")), "input_mode \"rgb\" is not supported");
    CHECK_THROWS(Manifest::read(variant("\"width\": 3", "\"width\": 0")), "width is 0; expected 1..65536");
    CHECK_THROWS(Manifest::read(variant("\"dtype\": \"float16\"", "\"dtype\": \"bfloat16\"")),
                 "unsupported element type \"bfloat16\"");
    CHECK_THROWS(Manifest::read(variant("[\"batch\", 4, 2, 3]", "[\"batch\", \"h\", 2, 3]")),
                 "files[1].inputs[0].shape[1] is the dynamic axis \"h\"");
    CHECK_THROWS(Manifest::read(writeFile("broken.json", "{\"height\": 2,\n \"width\": }")),
                 "broken.json: invalid JSON at line 2, column 11");

    // inputs for the matched graph, from maps at the model's size
    LabelInputs maps;
    maps.labels = makeMap(3, 2, {0, 1, 255, 1, 0, 2});
    maps.instances = makeMap(3, 2, {1, 1, 1, 1, 1, 1});
    maps.hasInstances = true;
    std::vector<HostTensor> const in = makeInputs(m, m.files[2], maps);
    CHECK(in.size() == 1 && in[0].spec.name == "label" && in[0].spec.shape == (std::vector<int64_t>{1, 4, 2, 3}));
    CHECK(in[0].bytes.size() == 4 * 6 * 2);
    uint16_t const* h = reinterpret_cast<uint16_t const*>(in[0].bytes.data());
    CHECK(halfToFloat(h[0]) == 1.f && halfToFloat(h[6 + 1]) == 1.f && halfToFloat(h[12 + 2]) == 1.f &&
          halfToFloat(h[12 + 5]) == 1.f && halfToFloat(h[18]) == 0.f);
}

void testSidecar() {
    std::string const engine = (gScratch / "e.plan").string();
    CHECK(!EngineSidecar::read(engine).present);
    checkSidecar(EngineSidecar::read(engine), "e.plan", "11.4.0", "GPU", "8.9", false);  // none: no checks
    writeFile("e.plan.json", R"({"sidecar_version": 1, "onnx": "/x/asapnet_plugin_fp16.onnx", "onnx_sha256": "ab",
        "tensorrt_module": "tensorrt", "tensorrt_version": "11.4.0.106",
        "gpu": {"name": "NVIDIA L4", "compute_capability": "8.9"},
        "plugin": {"name": "ASAP_SpatialMLP", "kind": "cpp", "library": "/x/lib.so"}, "notes": []})");
    EngineSidecar const s = EngineSidecar::read(engine);
    CHECK(s.present && s.onnxSha256 == "ab" && s.needsPlugin && s.computeCapability == "8.9");
    checkSidecar(s, "e.plan", "11.4.0", "NVIDIA L4", "8.9", true);
    CHECK_THROWS(checkSidecar(s, "e.plan", "11.4.1", "NVIDIA L4", "8.9", true),
                 "e.plan was built with TensorRT 11.4.0.106, this application runs TensorRT 11.4.1; engines only "
                 "load in the version that built them: rebuild it here: python -m asap_deploy.build "
                 "/x/asapnet_plugin_fp16.onnx");
    CHECK_THROWS(checkSidecar(s, "e.plan", "11.4.0", "NVIDIA H100", "9.0", true),
                 "built for NVIDIA L4 (sm 8.9), this GPU is NVIDIA H100 (sm 9.0)");
    CHECK_THROWS(checkSidecar(s, "e.plan", "11.4.0", "NVIDIA L4", "8.9", false),
                 "uses the ASAP_SpatialMLP plugin: pass --plugin");
    writeFile("e.plan.json",
              R"({"tensorrt_module": "tensorrt_rtx", "tensorrt_version": "1.2.0", "gpu": null, "plugin": null})");
    EngineSidecar const rtx = EngineSidecar::read(engine);
    CHECK(!rtx.needsPlugin && rtx.computeCapability.empty());
    CHECK_THROWS(checkSidecar(rtx, "e.plan", "11.4.0", "G", "8.9", false), "built with tensorrt_rtx");
    writeFile("e.plan.json", R"({"plugin": {"kind": "none"}, "gpu": "L4"})");
    CHECK_THROWS(EngineSidecar::read(engine), "e.plan.json: gpu must be an object, not a string");
    writeFile("e.plan.json", "{");
    CHECK_THROWS(EngineSidecar::read(engine), "e.plan.json: invalid JSON");
}

}  // namespace

int main(int argc, char** argv) {
    gScratch = argc > 1 ? fs::path(argv[1]) : fs::temp_directory_path() / "asap_app_tests";
    fs::remove_all(gScratch);
    fs::create_directories(gScratch);
    testJson();
    testHalf();
    testResize();
    testLabels();
    testImageOutput();
    testPng();
    testManifest();
    testSidecar();
    std::printf("%d checks, %d failed\n", gChecks, gFailures);
    return gFailures ? 1 : 0;
}
