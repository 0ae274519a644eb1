"""Generator -> the four ONNX graphs (g, mlp, asapnet, asapnet_plugin) in one precision."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import numpy as np
import onnx
import torch

from ..model import ASAPNetGenerator
from ..sample_inputs import generator_feeds
from .fp16 import convert_to_fp16
from .graphs import (FullGraph, GGraph, StageGraph, TensorSpec, _Inputs, generator_input_names,
                     image_spec, input_specs, params_spec, stage_input_names, stage_mode_for)
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


def _torch_feeds(feeds: Dict[str, np.ndarray], names: List[str]) -> List[torch.Tensor]:
    return [torch.from_numpy(feeds[n]) for n in names]


def export_graphs(gen: ASAPNetGenerator, height: int, width: int, input_mode: str,
                  precision: str, log: Callable[[str], None] = lambda s: None
                  ) -> Dict[str, ExportedGraph]:
    """Trace, (convert to FP16,) compose and validate every graph; nothing is written here."""
    cfg = gen.config
    cfg.check_resolution(height, width)
    dt = DTYPE[precision]
    fp16 = precision == "fp16"
    names = generator_input_names(cfg, input_mode)
    feeds = generator_feeds(cfg, input_mode, 1, height, width, seed=0)
    one_hot = generator_feeds(cfg, "one-hot", 1, height, width, seed=0)
    with torch.no_grad():
        params = gen.predict_params(torch.from_numpy(one_hot["label"]))

    def trace(module, example, in_names, out_name, what):
        log(f"tracing {what}")
        return export_module(module, example, in_names, [out_name])

    def precise(model, keep):
        return convert_to_fp16(model, keep) if fp16 else model

    float_in = [n for n in names if n == "label"]
    g = precise(trace(GGraph(gen, input_mode), _torch_feeds(feeds, names), names, "params", "g"), float_in)
    stage_mode = stage_mode_for(cfg, input_mode)
    stage_names = stage_input_names(stage_mode)
    stage_ex = _torch_feeds({**feeds, **one_hot}, stage_names) + [params]
    mlp = precise(trace(StageGraph(gen, stage_mode), stage_ex, stage_names + ["params"], "image", "mlp"), [])
    full = precise(trace(FullGraph(gen, input_mode), _torch_feeds(feeds, names), names, "image", "asapnet"),
                   float_in + ["image"])

    log("composing asapnet_plugin")
    if stage_mode == "label_ids_edges":
        # the MLP also reads the edge channel: encode in-graph, feed the one-hot tensor to the node
        encoder = trace(_Inputs(cfg, True), _torch_feeds(feeds, names), names, "label", "encoder")
        front = precise(trace(GGraph(gen, "one-hot"), _torch_feeds(one_hot, ["label"]), ["label"],
                              "params", "g (one-hot)"), ["label"])
        func = precise(trace(StageGraph(gen, "one_hot"), _torch_feeds(one_hot, ["label"]) + [params],
                             ["label", "params"], "image", "mlp (one-hot)"), [])
        plugin_mode, node_input = "one_hot", "label"
    else:
        encoder, front, func = None, g, mlp
        plugin_mode = "one_hot" if stage_mode == "one_hot" else "label_ids"
        node_input = "label" if plugin_mode == "one_hot" else "label_map"
    plugin = build_plugin_model(front, func, cfg, plugin_mode, node_input, ELEM["float32"], encoder)

    gin = input_specs(cfg, names, height, width)
    sin = input_specs(cfg, stage_names, height, width, label_dtype=dt)
    pspec = params_spec(cfg, height, width, dt)
    out = {
        "g": ExportedGraph("g", precision, g, gin, [pspec]),
        "mlp": ExportedGraph("mlp", precision, mlp, sin + [pspec], [image_spec(cfg, height, width, dt)]),
        "asapnet": ExportedGraph("asapnet", precision, full, gin,
                                 [image_spec(cfg, height, width, "float32")]),
        "asapnet_plugin": ExportedGraph("asapnet_plugin", precision, plugin, gin,
                                        [image_spec(cfg, height, width, "float32")], plugin_mode),
    }
    for name, art in out.items():
        log(f"checking {art.filename}")
        art.model = infer_and_check(art.model, art.filename)
    return out
