"""One Triton model's configuration as data, and its ``config.pbtxt`` text.

The text is written here by hand (not by tritonclient) so that parsing it back with Triton's schema
in ``triton_check`` really tests what was written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

#: platform -> backend, for the two model kinds this package writes
PLATFORMS = {"onnxruntime_onnx": "onnxruntime", "tensorrt_plan": "tensorrt"}
MODEL_FILES = {"onnxruntime_onnx": "model.onnx", "tensorrt_plan": "model.plan"}
KINDS = ("KIND_CPU", "KIND_GPU")


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output as Triton sees it: ``dims`` without the batch axis; -1 = any."""

    name: str
    data_type: str  # Triton DataType name, e.g. TYPE_FP32
    dims: tuple

    def to_dict(self) -> Dict[str, Any]:
        return {"name": self.name, "data_type": self.data_type, "dims": list(self.dims)}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> TensorSpec:
        return cls(d["name"], d["data_type"], tuple(d["dims"]))


@dataclass
class ModelSpec:
    """What a model folder holds: the config plus where its files come from."""

    name: str
    platform: str
    inputs: List[TensorSpec]
    outputs: List[TensorSpec]
    max_batch_size: int
    kind: str  # KIND_CPU | KIND_GPU
    instances: int = 1
    max_queue_delay_us: int = 1000
    warmup: bool = True
    source: str = ""  # file the model was copied from
    precision: str = "fp32"
    plugin: Optional[str] = None  # plugin library copied beside a plan
    notes: List[str] = field(default_factory=list)

    @property
    def backend(self) -> str:
        return PLATFORMS[self.platform]

    @property
    def model_file(self) -> str:
        return MODEL_FILES[self.platform]


class Enum(str):
    """A protobuf enum value: written bare, not quoted."""


class MapEntries(list):
    """A protobuf map: one ``key { key: ... value { ... } }`` block per entry, as Triton's docs
    write it."""


def _scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, Enum):
        return str(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, int):
        return str(v)
    raise TypeError(f"no text-format rendering for {type(v).__name__}")


def _message(fields: Dict[str, Any], indent: int) -> List[str]:
    pad = "  " * indent
    lines: List[str] = []
    for key, value in fields.items():
        if isinstance(value, dict):
            lines += [f"{pad}{key} {{", *_message(value, indent + 1), f"{pad}}}"]
        elif isinstance(value, MapEntries):
            for entry in value:
                lines += [f"{pad}{key} {{", *_message(entry, indent + 1), f"{pad}}}"]
        elif isinstance(value, (list, tuple)) and value and isinstance(value[0], dict):
            lines.append(f"{pad}{key} [")
            for i, item in enumerate(value):
                comma = "," if i < len(value) - 1 else ""
                lines += [f"{pad}  {{", *_message(item, indent + 2), f"{pad}  }}{comma}"]
            lines.append(f"{pad}]")
        elif isinstance(value, (list, tuple)):
            lines.append(f"{pad}{key}: [ {', '.join(_scalar(v) for v in value)} ]")
        else:
            lines.append(f"{pad}{key}: {_scalar(value)}")
    return lines


def _io(t: TensorSpec) -> Dict[str, Any]:
    return {"name": t.name, "data_type": Enum(t.data_type), "dims": list(t.dims)}


def config_fields(spec: ModelSpec) -> Dict[str, Any]:
    """The configuration in protobuf field order, as nested dicts/lists."""
    fields: Dict[str, Any] = {
        "name": spec.name,
        "platform": spec.platform,
        "backend": spec.backend,
        "max_batch_size": spec.max_batch_size,
        "input": [_io(t) for t in spec.inputs],
        "output": [_io(t) for t in spec.outputs],
        "instance_group": [{"count": spec.instances, "kind": Enum(spec.kind)}],
    }
    if spec.max_batch_size > 0:
        fields["dynamic_batching"] = {"max_queue_delay_microseconds": spec.max_queue_delay_us}
    if spec.warmup:
        # the first request would otherwise pay for engine/session initialisation
        fields["model_warmup"] = [
            {
                "name": "zeros_batch_1",
                "batch_size": 1,
                "inputs": MapEntries(
                    {
                        "key": t.name,
                        "value": {"data_type": Enum(t.data_type), "dims": list(t.dims), "zero_data": True},
                    }
                    for t in spec.inputs
                ),
            }
        ]
    return fields


def render_config(spec: ModelSpec, header: Sequence[str] = ()) -> str:
    comments = [f"# {line}" for line in header]
    return "\n".join(comments + _message(config_fields(spec), 0)) + "\n"
