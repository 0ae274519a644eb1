"""FP32 ONNX -> the FP16 ONNX a strongly typed TensorRT engine is built from.

TensorRT 11 has no FP16 builder flag: the graph's own types decide. Policy (what is "safe"):
convolutions, the 1x1 parameter head and the pixelwise MLP run in FP16; InstanceNormalization
(its mean/variance over up to 256x512 values) and the input tent blur stay FP32, with Casts
around them; the graph's float inputs and outputs named in ``keep_float32`` stay FP32.
"""
from __future__ import annotations

import warnings
from typing import Iterable, List

import onnx

from .graph_ops import toposort

FP32_OPS = ["InstanceNormalization"]


def _blur_nodes(graph: onnx.GraphProto) -> List[str]:
    """Depthwise (group > 1) convs are the fixed tent blur, plus the Pads feeding them."""
    producers = {o: n for n in graph.node for o in n.output}
    names = []
    for node in graph.node:
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        if node.op_type == "Conv" and group > 1:
            names.append(node.name)
            src = producers.get(node.input[0])
            if src is not None and src.op_type == "Pad":
                names.append(src.name)
    return names


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out


def convert_to_fp16(model: onnx.ModelProto, keep_float32: Iterable[str]) -> onnx.ModelProto:
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    model = _copy(model)  # the converter edits in place; the FP32 trace is reused
    for i, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{i}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = convert_float_to_float16(
            model, keep_io_types=list(keep_float32), op_block_list=DEFAULT_OP_BLOCK_LIST + FP32_OPS,
            node_block_list=_blur_nodes(model.graph))
    toposort(out.graph)  # the converter appends its Casts at the end of the node list
    return out
