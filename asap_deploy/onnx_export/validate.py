"""Checker + shape inference: every exported file must pass both, with a shape on every edge."""

from __future__ import annotations

import onnx

from ..errors import AsapDeployError


class GraphValidationError(AsapDeployError):
    pass


def infer_and_check(model: onnx.ModelProto, name: str) -> onnx.ModelProto:
    """Return ``model`` with inferred value_info; raise if any node output is left unshaped."""
    try:
        model = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise GraphValidationError(
            f"{name}: the exported graph is invalid ({exc}); this is a bug "
            f"in asap_deploy, please report it with the command"
        ) from None
    g = model.graph
    shaped = {vi.name: vi for vi in list(g.value_info) + list(g.output) + list(g.input)}
    missing = []
    for node in g.node:
        for out in node.output:
            vi = shaped.get(out)
            if not out:
                continue
            if vi is None or not vi.type.tensor_type.HasField("shape"):
                missing.append(out)
                continue
            for d in vi.type.tensor_type.shape.dim:
                if not (d.HasField("dim_value") or d.HasField("dim_param")):
                    missing.append(out)
                    break
    if missing:
        raise GraphValidationError(
            f"{name}: shape inference left {len(missing)} tensors without a full shape (first: {missing[:3]})"
        )
    return model
