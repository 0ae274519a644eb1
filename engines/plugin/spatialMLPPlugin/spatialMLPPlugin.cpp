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
    int32_t AsapMLPShape::* member;
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

int32_t dtypeCode(DataType t) {
    switch (t) {
        case DataType::kFLOAT:
            return ASAP_FLOAT32;
        case DataType::kHALF:
            return ASAP_FLOAT16;
        case DataType::kINT32:
            return ASAP_INT32;
        default:
            return -1;
    }
}

// The params grid in memory: NCHW (kLINEAR) or channels-last, each cell's channels padded to a
// multiple of 8 (kHWC8), 16 (kHWC16) or not at all (kHWC). Channels-last is what the kernels
// stage fastest (a cell's parameters are contiguous), and what a convolution can write directly.
bool paramsLayout(TensorFormat format, int64_t channels, int32_t& layout, int32_t& pitch) {
    int64_t const c = channels < 0 ? 0 : channels;
    switch (format) {
        case TensorFormat::kLINEAR:
            layout = ASAP_PARAMS_NCHW;
            pitch = 0;
            return true;
        case TensorFormat::kHWC:
            layout = ASAP_PARAMS_NHWC;
            pitch = static_cast<int32_t>(c);
            return true;
        case TensorFormat::kHWC8:
            layout = ASAP_PARAMS_NHWC;
            pitch = static_cast<int32_t>((c + 7) / 8 * 8);
            return true;
        case TensorFormat::kHWC16:
            layout = ASAP_PARAMS_NHWC;
            pitch = static_cast<int32_t>((c + 15) / 16 * 16);
            return true;
        default:
            return false;
    }
}

AsapMLPTensors describe(PluginTensorDesc const& x, PluginTensorDesc const& p) {
    AsapMLPTensors t{};
    for (int i = 0; i < 4; ++i) {
        t.input_dims[i] = x.dims.nbDims == 4 ? x.dims.d[i] : -1;
        t.params_dims[i] = p.dims.nbDims == 4 ? p.dims.d[i] : -1;
    }
    t.input_dtype = dtypeCode(x.type);
    t.params_dtype = dtypeCode(p.type);
    if (!paramsLayout(p.format, t.params_dims[1], t.params_layout, t.params_pitch)) t.params_layout = -1;
    return t;
}

}  // namespace

SpatialMLPPlugin::SpatialMLPPlugin(AsapMLPShape const& shape)
    : mShape(shape), mInputMode(kInputModes[shape.input_mode == kInputLabelIds ? 1 : 0]) {
    char id[160];
    std::snprintf(id, sizeof(id), "%s_v%s_%d_%d_%d_%d_%d_%d_%s", kPluginName, kPluginVersion, shape.in_channels,
                  shape.hidden_width, shape.depth, shape.out_channels, shape.downsampling, shape.label_nc,
                  mInputMode.c_str());
    mTimingCacheId = id;
}

IPluginCapability* SpatialMLPPlugin::getCapabilityInterface(PluginCapabilityType type) noexcept {
    switch (type) {
        case PluginCapabilityType::kCORE:
            return static_cast<IPluginV3OneCore*>(this);
        case PluginCapabilityType::kBUILD:
            return static_cast<IPluginV3OneBuild*>(this);
        case PluginCapabilityType::kRUNTIME:
            return static_cast<IPluginV3OneRuntime*>(this);
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

int32_t SpatialMLPPlugin::getOutputDataTypes(DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes,
                                             int32_t nbInputs) const noexcept {
    if (nbInputs != 2 || nbOutputs != 1) return -1;
    outputTypes[0] = inputTypes[1];  // the image has the parameter grid's precision
    return 0;
}

int32_t SpatialMLPPlugin::getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const*, int32_t,
                                          DimsExprs* outputs, int32_t nbOutputs, IExprBuilder& exprBuilder) noexcept {
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

bool SpatialMLPPlugin::supportsFormatCombination(int32_t pos, DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
                                                 int32_t nbOutputs) noexcept {
    if (nbInputs != 2 || nbOutputs != 1 || pos < 0 || pos > 2) return false;
    PluginTensorDesc const& d = inOut[pos].desc;
    bool const ids = mShape.input_mode == kInputLabelIds;
    switch (pos) {
        case 0:
            return d.format == TensorFormat::kLINEAR && (ids ? d.type == DataType::kINT32 : isFloat(d.type));
        case 1: {
            if (!isFloat(d.type) || (!ids && d.type != inOut[0].desc.type)) return false;
            bool const half = d.type == DataType::kHALF;
            return d.format == TensorFormat::kLINEAR || d.format == TensorFormat::kHWC ||
                   (half && (d.format == TensorFormat::kHWC8 || d.format == TensorFormat::kHWC16));
        }
        default:
            return d.format == TensorFormat::kLINEAR && d.type == inOut[1].desc.type;
    }
}

bool SpatialMLPPlugin::checkShapes(PluginTensorDesc const& x, PluginTensorDesc const& p) const noexcept {
    AsapMLPTensors const t = describe(x, p);
    if (asap_spatial_mlp_validate(&mShape, &t) == ASAP_OK) return true;
    logError(asap_last_error());
    return false;
}

int32_t SpatialMLPPlugin::configurePlugin(DynamicPluginTensorDesc const* in, int32_t nbInputs,
                                          DynamicPluginTensorDesc const*, int32_t nbOutputs) noexcept {
    if (nbInputs != 2 || nbOutputs != 1) return -1;
    return checkShapes(in[0].desc, in[1].desc) ? 0 : -1;
}

int32_t SpatialMLPPlugin::onShapeChange(PluginTensorDesc const* in, int32_t nbInputs, PluginTensorDesc const*,
                                        int32_t nbOutputs) noexcept {
    if (nbInputs != 2 || nbOutputs != 1) return -1;
    return checkShapes(in[0], in[1]) ? 0 : -1;
}

int32_t SpatialMLPPlugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const*, void const* const* inputs,
                                  void* const* outputs, void*, cudaStream_t stream) noexcept {
    // No allocation, no synchronous call: the kernel launch alone, so CUDA-graph capture works.
    AsapMLPTensors const t = describe(inputDesc[0], inputDesc[1]);
    if (asap_spatial_mlp_forward(&mShape, &t, inputs[0], inputs[1], outputs[0], stream) != ASAP_OK) {
        logError(asap_last_error());
        return -1;
    }
    return 0;
}

IPluginV3* SpatialMLPPlugin::attachToContext(IPluginResourceContext*) noexcept { return clone(); }

PluginFieldCollection const* SpatialMLPPlugin::getFieldsToSerialize() noexcept {
    mFields.clear();
    for (IntField const& f : kIntFields) mFields.emplace_back(f.name, &(mShape.*f.member), PluginFieldType::kINT32, 1);
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

IPluginV3* SpatialMLPPluginCreator::createPlugin(char const*, PluginFieldCollection const* fc, TensorRTPhase) noexcept {
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
                if (mode == kInputModes[0])
                    shape.input_mode = kInputOneHot;
                else if (mode == kInputModes[1])
                    shape.input_mode = kInputLabelIds;
                else
                    return logError("input_mode must be \"one_hot\" or \"label_ids\""), nullptr;
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
        if (!shape_is_valid(shape) || shape.hidden_width > kGenericMaxWidth || shape.out_channels > kGenericMaxWidth)
            return logError(
                       "invalid attributes: need positive widths up to 256, depth >= 2 and downsampling = "
                       "2^num_frequencies"),
                   nullptr;
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
