"""Python IPluginV3 ``ASAP_SpatialMLP``: same name, version, namespace and fields as the C++ plugin,
launching the same compiled kernel library (libasap_spatial_mlp.so) on TensorRT's stream.

For Python applications where the C++ plugin library cannot be built (no TensorRT headers):
``register_python_plugin(trt)`` before parsing or deserialising. Shape checks and the launch go
through the kernel library's C API (``asap_spatial_mlp_validate`` / ``_forward``), exactly as in
the C++ plugin; ``params`` is accepted NCHW or channels-last (kHWC8/kHWC16/kHWC).

Works with ``tensorrt``; with TensorRT for RTX 1.7.1 (pip wheel) only when ``libtensorrt_rtx.so``
can be found (see ``engine/plugins.py``): RTX's parser otherwise aborts on the plugin node.
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, Optional

import numpy as np

from ..errors import MissingDependencyError
from ..fused_mlp import (
    CPU_LIBRARY,
    DEFAULT_DIR,
    EMULATION_LIBRARY,
    INPUT_MODES,
    KERNEL_LIBRARY,
    NCHW,
    NHWC,
    SHAPE_FIELDS,
    AsapMLPShape,
    check,
    load_library,
    make_tensors,
)
from ..mlp_spec import MLPSpec
from ..onnx_export.plugin_node import PLUGIN_NAMESPACE, PLUGIN_OP, PLUGIN_VERSION

INT_FIELDS = SHAPE_FIELDS[:7]  # all but input_mode, which is a string attribute
REQUIRED = INT_FIELDS[:6]
_registered: Dict[int, Any] = {}


def parse_fields(fields) -> Dict[str, Any]:
    """PluginFieldCollection -> attribute dict, validated like the C++ creator."""
    attrs: Dict[str, Any] = {"label_nc": 0, "input_mode": "one_hot"}
    for f in fields:
        data = f.data
        if f.name == "input_mode":
            raw = data.encode() if isinstance(data, str) else bytes(np.asarray(data).astype(np.uint8))
            attrs["input_mode"] = raw.split(b"\0")[0].decode()
        elif f.name in INT_FIELDS:
            attrs[f.name] = int(np.asarray(data).reshape(-1)[0])
    missing = [n for n in REQUIRED if n not in attrs]
    if missing:
        raise ValueError(f"{PLUGIN_OP}: missing attributes {missing}")
    if attrs["input_mode"] not in INPUT_MODES:
        raise ValueError(f"{PLUGIN_OP}: input_mode must be one of {list(INPUT_MODES)}")
    MLPSpec.from_plugin_attributes(attrs)  # raises on an invalid MLP
    return attrs


def make_classes(trt: ModuleType, library: Optional[Path] = None):
    """Define the plugin and creator classes against ``trt`` (tensorrt or tensorrt_rtx)."""

    class SpatialMLPPlugin(
        trt.IPluginV3, trt.IPluginV3OneCore, trt.IPluginV3OneBuild, trt.IPluginV3OneRuntime
    ):
        def __init__(self, attrs: Dict[str, Any], phase=None) -> None:
            trt.IPluginV3.__init__(self)
            trt.IPluginV3OneCore.__init__(self)
            trt.IPluginV3OneBuild.__init__(self)
            trt.IPluginV3OneRuntime.__init__(self)
            self.plugin_name = PLUGIN_OP
            self.plugin_version = PLUGIN_VERSION
            self.plugin_namespace = PLUGIN_NAMESPACE
            self.num_outputs = 1
            self.attrs = dict(attrs)
            self.phase = phase
            self.spec = MLPSpec.from_plugin_attributes(attrs)
            self.timing_cache_id = "_".join(f"{attrs[k]}" for k in SHAPE_FIELDS[:7]) + attrs["input_mode"]
            self._shape = AsapMLPShape(*(attrs[k] for k in INT_FIELDS), INPUT_MODES[attrs["input_mode"]])
            self._lib = None

        # -- core / build ----------------------------------------------------------------------
        def get_capability_interface(self, type):
            return self

        def get_output_data_types(self, input_types):
            return [input_types[1]]

        def get_output_shapes(self, inputs, shape_inputs, expr_builder):
            out = trt.DimsExprs(inputs[0])
            out[1] = expr_builder.constant(self.spec.out_channels)
            return [out]

        def supports_format_combination(self, pos, in_out, num_inputs):
            desc, F = in_out[pos].desc, trt.TensorFormat
            floats = (trt.DataType.FLOAT, trt.DataType.HALF)
            ids = self.attrs["input_mode"] == "label_ids"
            if pos == 0:
                return desc.format == F.LINEAR and (
                    desc.type == trt.DataType.INT32 if ids else desc.type in floats
                )
            if pos == 1:
                if desc.type not in floats or (not ids and desc.type != in_out[0].desc.type):
                    return False
                half = desc.type == trt.DataType.HALF
                return desc.format in (F.LINEAR, F.HWC) or (half and desc.format in (F.HWC8, F.HWC16))
            return desc.format == F.LINEAR and desc.type == in_out[1].desc.type

        def _library(self):
            if self._lib is None:
                self._lib = load_library(library or DEFAULT_DIR / KERNEL_LIBRARY)
            return self._lib

        def _tensors(self, x_desc, p_desc):
            """The C API's description of the two inputs (-1 for dimensions not known yet)."""
            F = trt.TensorFormat
            dtypes = {
                trt.DataType.FLOAT: "float32",
                trt.DataType.HALF: "float16",
                trt.DataType.INT32: "int32",
            }
            x, p = [int(d) for d in x_desc.dims], [int(d) for d in p_desc.dims]
            c = max(p[1], 0) if len(p) == 4 else 0
            pitch = {F.LINEAR: 0, F.HWC: c, F.HWC8: -(-c // 8) * 8, F.HWC16: -(-c // 16) * 16}
            if p_desc.format not in pitch or x_desc.type not in dtypes or p_desc.type not in dtypes:
                raise ValueError(f"{PLUGIN_OP}: unsupported format or type {p_desc.format} {p_desc.type}")
            return make_tensors(
                x if len(x) == 4 else [-1] * 4,
                p if len(p) == 4 else [-1] * 4,
                dtypes[x_desc.type],
                dtypes[p_desc.type],
                NCHW if p_desc.format == F.LINEAR else NHWC,
                pitch[p_desc.format],
            )

        def _validator(self):
            """The library whose asap_spatial_mlp_validate checks shapes at build time: the CUDA
            kernel library, or, on a machine without one (an ahead-of-time build on a CPU), the
            emulation or CPU reference build beside where it would be (same validator)."""
            try:
                return self._library()
            except MissingDependencyError as exc:
                folder = Path(library or DEFAULT_DIR / KERNEL_LIBRARY).parent
                for name in (EMULATION_LIBRARY, CPU_LIBRARY):
                    if (folder / name).is_file():
                        return load_library(folder / name)
                raise MissingDependencyError(
                    f"{exc}; for shape checks alone, `python -m asap_deploy.build_plugin --emulate "
                    f"--out {folder}` builds libraries that need no CUDA"
                ) from None

        def _check(self, x_desc, p_desc) -> None:
            lib = self._validator()
            t = self._tensors(x_desc, p_desc)
            check(lib, lib.asap_spatial_mlp_validate(ctypes.byref(self._shape), ctypes.byref(t)), PLUGIN_OP)

        def configure_plugin(self, inp, out):
            self._check(inp[0].desc, inp[1].desc)

        def on_shape_change(self, inp, out):
            self._check(inp[0], inp[1])

        # -- runtime ---------------------------------------------------------------------------
        def enqueue(self, input_desc, output_desc, inputs, outputs, workspace, stream):
            lib = self._library()
            t = self._tensors(input_desc[0], input_desc[1])
            check(
                lib,
                lib.asap_spatial_mlp_forward(
                    ctypes.byref(self._shape),
                    ctypes.byref(t),
                    int(inputs[0]),
                    int(inputs[1]),
                    int(outputs[0]),
                    int(stream),
                ),
                PLUGIN_OP,
            )

        def attach_to_context(self, context):
            return self.clone()

        def get_fields_to_serialize(self):
            # PluginField keeps a raw pointer: the arrays must outlive the returned collection
            self._field_data = [np.array([self.attrs[k]], dtype=np.int32) for k in INT_FIELDS]
            self._field_data.append(np.frombuffer(self.attrs["input_mode"].encode() + b"\0", dtype=np.int8))
            fields = [
                trt.PluginField(k, a, trt.PluginFieldType.INT32) for k, a in zip(INT_FIELDS, self._field_data)
            ]
            fields.append(trt.PluginField("input_mode", self._field_data[-1], trt.PluginFieldType.CHAR))
            return trt.PluginFieldCollection(fields)

        def clone(self):
            return SpatialMLPPlugin(self.attrs, self.phase)

    class SpatialMLPPluginCreator(trt.IPluginCreatorV3One):
        def __init__(self) -> None:
            trt.IPluginCreatorV3One.__init__(self)
            self.name = PLUGIN_OP
            self.plugin_namespace = PLUGIN_NAMESPACE
            self.plugin_version = PLUGIN_VERSION
            fields = [
                trt.PluginField(k, np.array([], dtype=np.int32), trt.PluginFieldType.INT32)
                for k in INT_FIELDS
            ]
            fields.append(
                trt.PluginField("input_mode", np.array([], dtype=np.int8), trt.PluginFieldType.CHAR)
            )
            self.field_names = trt.PluginFieldCollection(fields)

        def create_plugin(self, name, fc, phase):
            return SpatialMLPPlugin(parse_fields(fc), phase)

    return SpatialMLPPlugin, SpatialMLPPluginCreator


def register_python_plugin(trt: ModuleType, library: Optional[Path] = None):
    """Register the creator once per module; returns it (TensorRT keeps only a reference)."""
    key = id(trt)
    if key not in _registered:
        _, creator_cls = make_classes(trt, library)
        creator = creator_cls()
        if not trt.get_plugin_registry().register_creator(creator, PLUGIN_NAMESPACE):
            raise RuntimeError(
                f"could not register {PLUGIN_OP}: a creator with that name, "
                f"version and namespace is already registered (the C++ plugin "
                f"library?); use one or the other in a process"
            )
        _registered[key] = creator
    return _registered[key]
