"""Parity of every exported graph against the FP32 PyTorch model, run in ONNX Runtime (CPU)."""

from __future__ import annotations

from typing import Dict

import numpy as np
import onnx
import torch

from ..metrics import compare
from ..model import ASAPNetGenerator
from ..sample_inputs import scene_feeds
from .exporter import ExportedGraph

FP32_MAX_ABS = 1e-4  # image, FP32 graphs
FP16_MIN_PSNR = 40.0  # image in [-1, 1], FP16 graphs


def ort_session(model: onnx.ModelProto):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def passes(metrics: Dict[str, float], precision: str, image: bool) -> bool:
    if not image:
        return True  # params are reported; the image criteria below decide
    if precision == "fp32":
        return metrics["max_abs"] <= FP32_MAX_ABS
    return metrics["psnr_db"] >= FP16_MIN_PSNR


def verify(
    gen: ASAPNetGenerator,
    graphs: Dict[str, ExportedGraph],
    height: int,
    width: int,
    batch: int = 1,
    seed: int = 1,
) -> Dict[str, Dict]:
    """{graph: metrics + 'ok'}; inputs are fresh (another seed than the tracing examples)."""
    cfg = gen.config
    feeds = scene_feeds(cfg, batch, height, width, seed)
    label = feeds["label"]
    with torch.no_grad():
        params = gen.predict_params(torch.from_numpy(label))
        image = gen.render(torch.from_numpy(label), params).numpy()
    params = params.numpy()
    results: Dict[str, Dict] = {}
    for name, art in graphs.items():
        sess = ort_session(art.model)
        if name == "mlp":
            dtype = np.float16 if art.precision == "fp16" else np.float32
            pool = {**feeds, "label": label.astype(dtype), "params": params.astype(dtype)}
            feed = {t.name: pool[t.name] for t in art.inputs}
        else:
            feed = {t.name: feeds[t.name] for t in art.inputs}
        out = sess.run(None, feed)[0]
        is_image = name != "g"
        m = compare(out.astype(np.float32), params if name == "g" else image, image=is_image)
        m["ok"] = bool(passes(m, art.precision, is_image))
        results[name] = m
    return results
