"""torch.nn.Module -> validated onnx.ModelProto."""

from __future__ import annotations

import io
import warnings
from typing import List, Sequence

import onnx
import torch
from torch import nn

OPSET = 17


def export_module(
    module: nn.Module, args: Sequence[torch.Tensor], input_names: List[str], output_names: List[str]
) -> onnx.ModelProto:
    """Trace ``module`` with the TorchScript exporter: opset 17, dynamic batch axis.

    The TorchScript exporter is used on purpose: it traces a 1024-wide conv stack in seconds,
    keeps our tensor names, and its output is plain opset-17 ops that TensorRT's parser reads.
    """
    buf = io.BytesIO()
    dynamic = {n: {0: "batch"} for n in list(input_names) + list(output_names)}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            tuple(args),
            buf,
            dynamo=False,
            opset_version=OPSET,
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=dynamic,
            do_constant_folding=True,
        )
    return onnx.load_from_string(buf.getvalue())
