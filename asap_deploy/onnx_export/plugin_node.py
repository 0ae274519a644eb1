"""The custom ``ASAP_SpatialMLP`` node that stands for the whole pixelwise MLP stage.

TensorRT's ONNX parser looks a custom node up by ``(op_type, plugin_version, plugin_namespace)``
(it ignores the domain), and with a ``plugin_namespace`` attribute present it prefers a registered
plugin over anything else. The same file carries a model-local ONNX function of the same name
whose body is the standard-op mlp graph, so ONNX Runtime (and TensorRT without the plugin)
runs the very same file through the function.

Node contract (documented in README and engines/plugin/README.md):
  inputs   0: ``label`` (B, C, H, W) float/half, one-hot mode; the first ``in_channels``
              channels are read, so the LR-only edge channel can stay in place.
              or ``label_map`` (B, 1, H, W) int32 class ids, label_ids mode; id 255 means
              ``label_nc``, and an id >= ``in_channels`` contributes nothing.
           1: ``params`` (B, num_params, H/S, W/S), same float type as the output.
  output   0: ``image`` (B, out_channels, H, W), type of ``params``.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Union

import onnx
from onnx import helper

from ..config import GeneratorConfig
from .graph_ops import prefix_graph, toposort
from .torch_export import OPSET

PLUGIN_OP = "ASAP_SpatialMLP"
PLUGIN_DOMAIN = "asap_deploy"
PLUGIN_VERSION = "1"
PLUGIN_NAMESPACE = "asap_deploy"
INPUT_MODES = {"one_hot": "one_hot", "label_ids": "label_ids"}


def node_attributes(cfg: GeneratorConfig, plugin_mode: str) -> Dict[str, Union[int, str]]:
    attrs: Dict[str, Union[int, str]] = dict(cfg.mlp_spec.plugin_attributes())
    attrs["label_nc"] = cfg.label_nc
    attrs["input_mode"] = INPUT_MODES[plugin_mode]
    return attrs


def function_from_graph(graph: onnx.GraphProto, attrs: Dict[str, object]) -> onnx.FunctionProto:
    """Turn the standard-op stage graph into a FunctionProto named like the plugin."""
    nodes: List[onnx.NodeProto] = []
    for t in graph.initializer:
        nodes.append(helper.make_node("Constant", [], [t.name], value=t))
    nodes.extend(graph.node)
    return helper.make_function(
        PLUGIN_DOMAIN,
        PLUGIN_OP,
        [i.name for i in graph.input],
        [o.name for o in graph.output],
        nodes,
        [helper.make_opsetid("", OPSET)],
        attributes=sorted(attrs),
    )


def build_plugin_model(
    front: onnx.ModelProto,
    stage: onnx.ModelProto,
    cfg: GeneratorConfig,
    plugin_mode: str,
    node_input: str,
    image_dtype: int,
    encoder: Optional[onnx.ModelProto] = None,
) -> onnx.ModelProto:
    """Graph inputs -> [encoder ->] front (G, outputs ``params``) -> custom node -> ``image``.

    ``node_input`` names the tensor fed to the node's first input; it is cast to the stage's
    label type when that differs (FP16 stage behind an FP32 ``label`` input). ``image_dtype`` is
    the graph output's element type; the node's output is cast to it when needed.
    """
    attrs = node_attributes(cfg, plugin_mode)
    stage_in = {i.name: i.type.tensor_type.elem_type for i in stage.graph.input}
    stage_out = stage.graph.output[0].type.tensor_type.elem_type
    parts = (
        [prefix_graph(encoder.graph, "encoder/", [i.name for i in encoder.graph.input] + ["label"])]
        if encoder is not None
        else []
    )
    front_keep = [i.name for i in front.graph.input] + ["params"]
    parts.append(prefix_graph(front.graph, "g/", front_keep))
    first = parts[0]

    nodes: List[onnx.NodeProto] = [n for p in parts for n in p.node]
    inits = [t for p in parts for t in p.initializer]
    value_info = [v for p in parts for v in p.value_info]
    value_info += [o for p in parts[:-1] for o in p.output]  # encoder's `label`
    value_info.append(parts[-1].output[0])  # `params`

    feed = node_input
    want = stage_in[list(stage_in)[0]]
    have = _elem_type(node_input, first, value_info)
    if have != want:
        feed = f"{node_input}_cast"
        nodes.append(helper.make_node("Cast", [node_input], [feed], to=want, name=f"cast_{node_input}"))
    out_name = "image" if stage_out == image_dtype else "image_stage"
    nodes.append(
        helper.make_node(
            PLUGIN_OP,
            [feed, "params"],
            [out_name],
            name="spatial_mlp",
            domain=PLUGIN_DOMAIN,
            plugin_version=PLUGIN_VERSION,
            plugin_namespace=PLUGIN_NAMESPACE,
            **attrs,
        )
    )
    if out_name != "image":
        nodes.append(helper.make_node("Cast", [out_name], ["image"], to=image_dtype, name="cast_image"))
    image = onnx.ValueInfoProto()
    image.CopyFrom(stage.graph.output[0])
    image.type.tensor_type.elem_type = image_dtype

    graph = helper.make_graph(
        nodes, "asapnet_plugin", list(first.input), [image], initializer=inits, value_info=value_info
    )
    toposort(graph)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(PLUGIN_DOMAIN, 1)],
        functions=[function_from_graph(stage.graph, attrs)],
        producer_name="asap_deploy",
    )
    model.ir_version = front.ir_version
    return model


def _elem_type(name: str, graph: onnx.GraphProto, value_info: List[onnx.ValueInfoProto]) -> int:
    for vi in list(graph.input) + value_info:
        if vi.name == name:
            return vi.type.tensor_type.elem_type
    raise KeyError(f"no type known for tensor {name!r}")


def read_node_attributes(model: onnx.ModelProto) -> Dict[str, object]:
    """Attributes of the (single) custom node, as Python values."""
    for node in model.graph.node:
        if node.op_type == PLUGIN_OP:
            return {a.name: helper.get_attribute_value(a) for a in node.attribute}
    raise KeyError(f"no {PLUGIN_OP} node in the model")
