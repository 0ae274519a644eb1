"""Generator -> the four ONNX graphs (g, mlp, asapnet, asapnet_plugin) in one precision."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import onnx
import torch

from ..model import ASAPNetGenerator
from ..sample_inputs import scene_feeds
from .fp16 import convert_to_fp16
from .graphs import (
    FullGraph,
    GGraph,
    StageGraph,
    TensorSpec,
    _Inputs,
    composes_encoder,
    generator_input_names,
    image_spec,
    input_specs,
    params_spec,
    stage_input_names,
    stage_mode_for,
)
from .plugin_node import build_plugin_model
from .torch_export import export_module
from .validate import infer_and_check

GRAPHS = ("g", "mlp", "asapnet", "asapnet_plugin")
ELEM = {"float32": onnx.TensorProto.FLOAT, "float16": onnx.TensorProto.FLOAT16}
DTYPE = {"fp32": "float32", "fp16": "float16"}


@dataclass
class ExportedGraph:
    graph: str
    precision: str
    model: onnx.ModelProto
    inputs: List[TensorSpec]
    outputs: List[TensorSpec]
    plugin_mode: Optional[str] = None

    @property
    def filename(self) -> str:
        return f"{self.graph}.onnx" if self.precision == "fp32" else f"{self.graph}_{self.precision}.onnx"


@dataclass
class TracedGraphs:
    """The FP32 traces every precision is derived from (traced once per export)."""

    input_mode: str
    stage_mode: str
    names: List[str]
    stage_names: List[str]
    g: onnx.ModelProto
    mlp: onnx.ModelProto
    asapnet: onnx.ModelProto
    encoder: Optional[onnx.ModelProto] = None  # composes_encoder(stage_mode): inputs -> label
    g_one_hot: Optional[onnx.ModelProto] = None  # composes_encoder(stage_mode) only
    mlp_one_hot: Optional[onnx.ModelProto] = None  # composes_encoder(stage_mode) only


def trace_graphs(
    gen: ASAPNetGenerator,
    height: int,
    width: int,
    input_mode: str,
    log: Callable[[str], None] = lambda s: None,
) -> TracedGraphs:
    cfg = gen.config
    cfg.check_resolution(height, width)
    names = generator_input_names(cfg, input_mode)
    pool = scene_feeds(cfg, 1, height, width, seed=0)
    with torch.no_grad():
        params = gen.predict_params(torch.from_numpy(pool["label"]))

    def trace(module, pool, in_names, out_name, what):
        log(f"tracing {what}")
        args = [params if n == "params" else torch.from_numpy(pool[n]) for n in in_names]
        return export_module(module, args, in_names, [out_name])

    stage_mode = stage_mode_for(cfg, input_mode)
    stage_names = stage_input_names(stage_mode)
    t = TracedGraphs(
        input_mode,
        stage_mode,
        names,
        stage_names,
        g=trace(GGraph(gen, input_mode), pool, names, "params", "g"),
        mlp=trace(StageGraph(gen, stage_mode), pool, stage_names + ["params"], "image", "mlp"),
        asapnet=trace(FullGraph(gen, input_mode), pool, names, "image", "asapnet"),
    )
    if composes_encoder(stage_mode):
        # the node reads float label channels (RGB, or one-hot + edges): encode in-graph first
        t.encoder = trace(_Inputs(cfg, input_mode), pool, names, "label", "input encoder")
        t.g_one_hot = trace(GGraph(gen, "one-hot"), pool, ["label"], "params", "g (one-hot)")
        t.mlp_one_hot = trace(StageGraph(gen, "one_hot"), pool, ["label", "params"], "image", "mlp (one-hot)")
    return t


def export_graphs(
    gen: ASAPNetGenerator,
    height: int,
    width: int,
    precision: str,
    traced: TracedGraphs,
    log: Callable[[str], None] = lambda s: None,
) -> Dict[str, ExportedGraph]:
    """The four graphs in ``precision``, composed and validated; nothing is written here."""
    cfg = gen.config
    dt = DTYPE[precision]
    names, stage_names = traced.names, traced.stage_names
    float_in = [n for n in names if n == "label"]

    def precise(model, keep):
        if precision == "fp32":
            return model
        log(f"converting to {precision}")
        return convert_to_fp16(model, keep)

    g = precise(traced.g, float_in)
    mlp = precise(traced.mlp, [])
    full = precise(traced.asapnet, float_in + ["image"])
    log("composing asapnet_plugin")
    if composes_encoder(traced.stage_mode):
        encoder, front, func = (
            traced.encoder,
            precise(traced.g_one_hot, ["label"]),
            precise(traced.mlp_one_hot, []),
        )
        plugin_mode, node_input = "one_hot", "label"
    else:
        encoder, front, func = None, g, mlp
        plugin_mode = "one_hot" if traced.stage_mode == "one_hot" else "label_ids"
        node_input = "label" if plugin_mode == "one_hot" else "label_map"
    plugin = build_plugin_model(front, func, cfg, plugin_mode, node_input, ELEM["float32"], encoder)

    gin = input_specs(cfg, names, height, width)
    sin = input_specs(cfg, stage_names, height, width, label_dtype=dt)
    pspec = params_spec(cfg, height, width, dt)
    image32 = [image_spec(cfg, height, width, "float32")]
    out = {
        "g": ExportedGraph("g", precision, g, gin, [pspec]),
        "mlp": ExportedGraph("mlp", precision, mlp, sin + [pspec], [image_spec(cfg, height, width, dt)]),
        "asapnet": ExportedGraph("asapnet", precision, full, gin, image32),
        "asapnet_plugin": ExportedGraph("asapnet_plugin", precision, plugin, gin, image32, plugin_mode),
    }
    for art in out.values():
        log(f"checking {art.filename}")
        _declare_io(art.model, art.inputs + art.outputs)
        art.model = infer_and_check(art.model, art.filename)
    return out


def _declare_io(model: onnx.ModelProto, specs: List[TensorSpec]) -> None:
    """Write the interface's shapes onto the graph's inputs and outputs: the TorchScript exporter
    names dims after what it traced (with the input blur it declares g's params output as
    (batch, NP, "batch", ...)), and ONNX Runtime, TensorRT and Triton read the declared shapes."""
    by_name = {s.name: s for s in specs}
    for vi in list(model.graph.input) + list(model.graph.output):
        dims = vi.type.tensor_type.shape.dim
        del dims[:]
        for d in by_name[vi.name].shape:
            if isinstance(d, str):
                dims.add().dim_param = d
            else:
                dims.add().dim_value = d
