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
            model,
            keep_io_types=list(keep_float32),
            op_block_list=DEFAULT_OP_BLOCK_LIST + FP32_OPS,
            node_block_list=_blur_nodes(model.graph),
        )
    toposort(out.graph)  # the converter appends its Casts at the end of the node list
    _fold_round_trips(out.graph)
    return out


def _fold_round_trips(graph: onnx.GraphProto) -> None:
    """Drop no-op Casts and fp32 -> fp16 -> fp32 Cast pairs between FP32 regions.

    The converter casts every blocked node's output to FP16 and back for the next blocked node
    (and retypes the model's own float casts); those round trips only lose precision and cost
    TensorRT a kernel each.
    """
    F32, F16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
    types = {
        v.name: v.type.tensor_type.elem_type
        for v in list(graph.value_info) + list(graph.input) + list(graph.output)
    }
    types.update({t.name: t.data_type for t in graph.initializer})
    outputs = {o.name for o in graph.output}

    def cast_to(node) -> int:
        return next(a.i for a in node.attribute if a.name == "to")

    while True:
        producers = {o: n for n in graph.node for o in n.output}
        rename = {}
        for node in graph.node:
            if node.op_type != "Cast" or node.output[0] in outputs:
                continue
            src, to = node.input[0], cast_to(node)
            first = producers.get(src)
            if types.get(src) == to:
                rename[node.output[0]] = src
            elif (
                to == F32
                and first is not None
                and first.op_type == "Cast"
                and cast_to(first) == F16
                and types.get(first.input[0]) == F32
            ):
                rename[node.output[0]] = first.input[0]
        if not rename:
            break
        for node in graph.node:
            node.input[:] = [rename.get(i, i) for i in node.input]
        _drop_dead_nodes(graph, outputs)


def _drop_dead_nodes(graph: onnx.GraphProto, outputs) -> None:
    while True:
        used = {i for n in graph.node for i in n.input} | set(outputs)
        keep = [n for n in graph.node if any(o in used for o in n.output)]
        if len(keep) == len(graph.node):
            break
        del graph.node[:]
        graph.node.extend(keep)
    live = {i for n in graph.node for i in n.input}
    inits = [t for t in graph.initializer if t.name in live]
    del graph.initializer[:]
    graph.initializer.extend(inits)
    names = {o for n in graph.node for o in n.output} | {i.name for i in graph.input}
    vis = [v for v in graph.value_info if v.name in names]
    del graph.value_info[:]
    graph.value_info.extend(vis)
