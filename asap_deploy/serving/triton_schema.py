"""Triton's model-configuration schema (from tritonclient, imported lazily) and dtype names."""

from __future__ import annotations

from types import ModuleType
from typing import Any, Tuple

import onnx

from ..errors import AsapDeployError, MissingDependencyError


class TritonRepoError(AsapDeployError):
    """A repository cannot be written from these inputs, or a written one is not valid."""


INSTALL_HINT = 'pip install -e ".[triton]" (or pip install "tritonclient[grpc]")'

#: ONNX element type -> Triton DataType name (the types an ASAP-Net graph can carry, and a few more)
ONNX_TO_TRITON = {
    onnx.TensorProto.FLOAT: "TYPE_FP32",
    onnx.TensorProto.FLOAT16: "TYPE_FP16",
    onnx.TensorProto.BFLOAT16: "TYPE_BF16",
    onnx.TensorProto.DOUBLE: "TYPE_FP64",
    onnx.TensorProto.INT8: "TYPE_INT8",
    onnx.TensorProto.INT16: "TYPE_INT16",
    onnx.TensorProto.INT32: "TYPE_INT32",
    onnx.TensorProto.INT64: "TYPE_INT64",
    onnx.TensorProto.UINT8: "TYPE_UINT8",
    onnx.TensorProto.UINT16: "TYPE_UINT16",
    onnx.TensorProto.UINT32: "TYPE_UINT32",
    onnx.TensorProto.UINT64: "TYPE_UINT64",
    onnx.TensorProto.BOOL: "TYPE_BOOL",
}
#: dtype names of manifest.json -> Triton DataType name
NUMPY_TO_TRITON = {
    "float32": "TYPE_FP32",
    "float16": "TYPE_FP16",
    "int32": "TYPE_INT32",
    "int64": "TYPE_INT64",
    "uint8": "TYPE_UINT8",
    "bool": "TYPE_BOOL",
}


def onnx_dtype(elem_type: int) -> str:
    try:
        return ONNX_TO_TRITON[elem_type]
    except KeyError:
        name = onnx.TensorProto.DataType.Name(elem_type)
        raise TritonRepoError(f"ONNX type {name} has no Triton equivalent here") from None


def load_schema() -> Tuple[ModuleType, ModuleType]:
    """(model_config_pb2, text_format), or a one-line error saying how to install them."""
    try:
        from google.protobuf import text_format
        from tritonclient.grpc import model_config_pb2
    except ImportError as exc:
        raise MissingDependencyError(
            f"tritonclient is not installed ({exc}); it provides Triton's model-configuration "
            f"schema that every config.pbtxt is checked against: {INSTALL_HINT}"
        ) from None
    return model_config_pb2, text_format


def parse_config(text: str, where: str) -> Any:
    """config.pbtxt text -> inference.ModelConfig; misspelt fields and bad enums raise."""
    pb2, text_format = load_schema()
    config = pb2.ModelConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as exc:
        raise TritonRepoError(f"{where}:{exc}") from None
    return config


def dtype_name(value: int) -> str:
    pb2, _ = load_schema()
    return pb2.DataType.Name(value)


def kind_name(value: int) -> str:
    pb2, _ = load_schema()
    return pb2.ModelInstanceGroup.Kind.Name(value)
