#include "spatialMLPPlugin.h"

#include "spatial_mlp_layout.h"

#include <cstdio>
#include <cstring>
#include <exception>
#include <new>

using namespace nvinfer1;

namespace asap {
namespace plugin {
namespace {

ILoggerFinder* gLoggerFinder = nullptr;

void logError(char const* what) noexcept {
    char msg[512];
    std::snprintf(msg, sizeof(msg), "%s: %s", kPluginName, what);
    ILogger* logger = gLoggerFinder ? gLoggerFinder->findLogger() : nullptr;
    if (logger)
        logger->log(ILogger::Severity::kERROR, msg);
    else
        std::fprintf(stderr, "[E] %s\n", msg);
}

// Integer attributes, in the order of AsapMLPShape; ONNX INT attributes arrive as kINT32.
struct IntField {
    char const* name;
    int32_t AsapMLPShape::*member;
    bool required;
};
constexpr IntField kIntFields[] = {
    {"in_channels", &AsapMLPShape::in_channels, true},
    {"hidden_width", &AsapMLPShape::hidden_width, true},
    {"depth", &AsapMLPShape::depth, true},
    {"out_channels", &AsapMLPShape::out_channels, true},
    {"downsampling", &AsapMLPShape::downsampling, true},
    {"num_frequencies", &AsapMLPShape::num_frequencies, true},
    {"label_nc", &AsapMLPShape::label_nc, false},
};
constexpr char const* kInputModeField = "input_mode";
constexpr char const* kInputModes[] = {"one_hot", "label_ids"};

bool isFloat(DataType t) { return t == DataType::kFLOAT || t == DataType::kHALF; }

}  // namespace

SpatialMLPPlugin::SpatialMLPPlugin(AsapMLPShape const& shape)
    : mShape(shape), mInputMode(kInputModes[shape.input_mode == kInputLabelIds ? 1 : 0]) {
    char id[160];
    std::snprintf(id, sizeof(id), "%s_v%s_%d_%d_%d_%d_%d_%d_%s", kPluginName, kPluginVersion,
                  shape.in_channels, shape.hidden_width, shape.depth, shape.out_channels,
                  shape.downsampling, shape.label_nc, mInputMode.c_str());
    mTimingCacheId = id;
}

IPluginCapability* SpatialMLPPlugin::getCapabilityInterface(PluginCapabilityType type) noexcept {
    switch (type) {
        case PluginCapabilityType::kCORE: return static_cast<IPluginV3OneCore*>(this);
        case PluginCapabilityType::kBUILD: return static_cast<IPluginV3OneBuild*>(this);
        case PluginCapabilityType::kRUNTIME: return static_cast<IPluginV3OneRuntime*>(this);
    }
    return nullptr;
}

IPluginV3* SpatialMLPPlugin::clone() noexcept {
    try {
        return new SpatialMLPPlugin(mShape);
    } catch (std::exception const& e) {
        logError(e.what());
    }
    return nullptr;
}

char const* SpatialMLPPlugin::getTimingCacheID() noexcept { return mTimingCacheId.c_str(); }

int32_t SpatialMLPPlugin::getOutputDataTypes(DataType* outputTypes, int32_t nbOutputs,
                                             DataType const* inputTypes, int32_t nbInputs) const noexcept {
    if (nbInputs != 2 || nbOutputs != 1) return -1;
    outputTypes[0] = inputTypes[1];  // the image has the parameter grid's precision
    return 0;
}

int32_t SpatialMLPPlugin::getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const*,
                                          int32_t, DimsExprs* outputs, int32_t nbOutputs,
                                          IExprBuilder& exprBuilder) noexcept {
    if (nbInputs != 2 || nbOutputs != 1 || inputs[0].nbDims != 4 || inputs[1].nbDims != 4) {
        logError("expects inputs (B, C, H, W) and params (B, NP, H/S, W/S)");
        return -1;
    }
    outputs[0].nbDims = 4;
    outputs[0].d[0] = inputs[0].d[0];
    outputs[0].d[1] = exprBuilder.constant(mShape.out_channels);
    outputs[0].d[2] = inputs[0].d[2];
    outputs[0].d[3] = inputs[0].d[3];
    return 0;
}

bool SpatialMLPPlugin::supportsFormatCombination(int32_t pos, DynamicPluginTensorDesc const* inOut,
                                                 int32_t nbInputs, int32_t nbOutputs) noexcept {
    if (nbInputs != 2 || nbOutputs != 1 || pos < 0 || pos > 2) return false;
    PluginTensorDesc const& d = inOut[pos].desc;
    if (d.format != TensorFormat::kLINEAR) return false;
    bool const ids = mShape.input_mode == kInputLabelIds;
    switch (pos) {
        case 0: return ids ? d.type == DataType::kINT32 : isFloat(d.type);
        case 1: return isFloat(d.type) && (ids || d.type == inOut[0].desc.type);
        default: return d.type == inOut[1].desc.type;
    }
}

bool SpatialMLPPlugin::checkShapes(Dims const& x, Dims const& p) const noexcept {
    // -1 marks a dimension that is only known at run time; check what is known
    auto known = [](int64_t v) { return v >= 0; };
    int64_t const S = mShape.downsampling;
    if (x.nbDims != 4 || p.nbDims != 4) return false;
    bool const ids = mShape.input_mode == kInputLabelIds;
    if (known(x.d[1]) && (ids ? x.d[1] != 1 : x.d[1] < mShape.in_channels)) {
        logError(ids ? "label_ids mode expects a (B, 1, H, W) int32 input"
                     : "the label input has fewer channels than in_channels");
        return false;
    }
    if (known(p.d[1]) && p.d[1] != num_params(mShape)) {
        logError("params channel count differs from the MLP's parameter count (check the attributes)");
        return false;
    }
    for (int i = 2; i < 4; ++i) {
        if (known(x.d[i]) && x.d[i] % S != 0) {
            logError("H and W must be multiples of the downsampling factor S");
            return false;
        }
        if (known(x.d[i]) && known(p.d[i]) && p.d[i] * S != x.d[i]) {
            logError("the parameter grid must be (H/S, W/S)");
            return false;
        }
    }
    return true;
}

int32_t SpatialMLPPlugin::configurePlugin(DynamicPluginTensorDesc const* in, int32_t nbInputs,
                                          DynamicPluginTensorDesc const*, int32_t nbOutputs) noexcept {
    if (nbInputs != 2 || nbOutputs != 1) return -1;
    return checkShapes(in[0].desc.dims, in[1].desc.dims) ? 0 : -1;
}

int32_t SpatialMLPPlugin::onShapeChange(PluginTensorDesc const* in, int32_t nbInputs,
                                        PluginTensorDesc const*, int32_t nbOutputs) noexcept {
    if (nbInputs != 2 || nbOutputs != 1) return -1;
    return checkShapes(in[0].dims, in[1].dims) ? 0 : -1;
}

int32_t SpatialMLPPlugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* outputDesc,
                                  void const* const* inputs, void* const* outputs, void*,
                                  cudaStream_t stream) noexcept {
    // No allocation, no synchronous call: the kernel launch alone, so CUDA-graph capture works.
    int const dtype = outputDesc[0].type == DataType::kHALF ? ASAP_FLOAT16 : ASAP_FLOAT32;
    Dims const& x = inputDesc[0].dims;
    int const status = asap_spatial_mlp_forward(&mShape, dtype, inputs[0], static_cast<int>(x.d[1]),
                                                inputs[1], outputs[0], static_cast<int>(x.d[0]),
                                                static_cast<int>(x.d[2]), static_cast<int>(x.d[3]), stream);
    if (status != ASAP_OK) {
        logError(asap_status_string(status));
        return -1;
    }
    return 0;
}

IPluginV3* SpatialMLPPlugin::attachToContext(IPluginResourceContext*) noexcept { return clone(); }

PluginFieldCollection const* SpatialMLPPlugin::getFieldsToSerialize() noexcept {
    mFields.clear();
    for (IntField const& f : kIntFields)
        mFields.emplace_back(f.name, &(mShape.*f.member), PluginFieldType::kINT32, 1);
    mFields.emplace_back(kInputModeField, mInputMode.c_str(), PluginFieldType::kCHAR,
                         static_cast<int32_t>(mInputMode.size() + 1));
    mFieldCollection.nbFields = static_cast<int32_t>(mFields.size());
    mFieldCollection.fields = mFields.data();
    return &mFieldCollection;
}

SpatialMLPPluginCreator::SpatialMLPPluginCreator() {
    for (IntField const& f : kIntFields) mFields.emplace_back(f.name, nullptr, PluginFieldType::kINT32, 1);
    mFields.emplace_back(kInputModeField, nullptr, PluginFieldType::kCHAR, 0);
    mFieldCollection.nbFields = static_cast<int32_t>(mFields.size());
    mFieldCollection.fields = mFields.data();
}

IPluginV3* SpatialMLPPluginCreator::createPlugin(char const*, PluginFieldCollection const* fc,
                                                 TensorRTPhase) noexcept {
    try {
        AsapMLPShape shape{};
        shape.input_mode = kInputOneHot;
        bool seen[sizeof(kIntFields) / sizeof(kIntFields[0])] = {};
        for (int32_t i = 0; fc && i < fc->nbFields; ++i) {
            PluginField const& f = fc->fields[i];
            if (!f.name || !f.data) continue;
            if (std::strcmp(f.name, kInputModeField) == 0) {
                if (f.type != PluginFieldType::kCHAR) return logError("input_mode must be a string"), nullptr;
                std::string mode(static_cast<char const*>(f.data), strnlen(static_cast<char const*>(f.data), f.length));
                if (mode == kInputModes[0]) shape.input_mode = kInputOneHot;
                else if (mode == kInputModes[1]) shape.input_mode = kInputLabelIds;
                else return logError("input_mode must be \"one_hot\" or \"label_ids\""), nullptr;
                continue;
            }
            for (size_t k = 0; k < sizeof(kIntFields) / sizeof(kIntFields[0]); ++k) {
                if (std::strcmp(f.name, kIntFields[k].name) != 0) continue;
                if (f.type == PluginFieldType::kINT32)
                    shape.*kIntFields[k].member = *static_cast<int32_t const*>(f.data);
                else if (f.type == PluginFieldType::kINT64)
                    shape.*kIntFields[k].member = static_cast<int32_t>(*static_cast<int64_t const*>(f.data));
                else
                    return logError("integer attributes must be INT32 or INT64"), nullptr;
                seen[k] = true;
            }
        }
        for (size_t k = 0; k < sizeof(kIntFields) / sizeof(kIntFields[0]); ++k)
            if (kIntFields[k].required && !seen[k]) {
                char msg[128];
                std::snprintf(msg, sizeof(msg), "missing attribute %s", kIntFields[k].name);
                return logError(msg), nullptr;
            }
        if (!shape_is_valid(shape))
            return logError("invalid attributes: need depth >= 2 and downsampling = 2^num_frequencies"), nullptr;
        return new SpatialMLPPlugin(shape);
    } catch (std::exception const& e) {
        logError(e.what());
    }
    return nullptr;
}

}  // namespace plugin
}  // namespace asap

#ifdef ASAP_PLUGIN_STATIC_REGISTRATION
// Registration on load (ctypes.CDLL, polygraphy --plugins, trtexec --staticPlugins, linking).
// Like REGISTER_TENSORRT_PLUGIN, but under our namespace: the ONNX node's plugin_namespace
// attribute is part of the parser's lookup key, so the registry entry must carry it.
namespace {
struct StaticRegistration {
    asap::plugin::SpatialMLPPluginCreator creator;
    StaticRegistration() { getPluginRegistry()->registerCreator(creator, asap::plugin::kPluginNamespace); }
} const gStaticRegistration;
}  // namespace
#else
// Plugin-library entry points (IPluginRegistry::loadLibrary, trtexec --dynamicPlugins,
// setPluginsToSerialize). Kept out of the static build: loadLibrary refuses creators that are
// already registered.
extern "C" {
void setLoggerFinder(nvinfer1::ILoggerFinder* finder) { asap::plugin::gLoggerFinder = finder; }

nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators) {
    static asap::plugin::SpatialMLPPluginCreator creator;
    static nvinfer1::IPluginCreatorInterface* const creators[] = {&creator};
    nbCreators = 1;
    return creators;
}
}
#endif
