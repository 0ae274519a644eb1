"""What a runner expects of each input, and the checks that turn a bad feed into one clear line.

``TensorMeta`` comes from the runner's model (ONNX Runtime session, TensorRT engine, or the
PyTorch generator's configuration); ``ValueRule`` adds what the file cannot say (the valid class
ids, finiteness). Arrays may be numpy or torch tensors (on any device: the value checks run
where the data is).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..errors import InputError

DONT_CARE = 255  # the authors' loader maps label 255 to label_nc


@dataclass(frozen=True)
class ValueRule:
    ids_below: Optional[int] = None  # integer class ids: 0 .. ids_below-1, or 255
    finite: bool = False  # float tensors: no NaN / inf
    meaning: str = ""  # said in messages: what the tensor is


@dataclass(frozen=True)
class TensorMeta:
    name: str
    dtype: np.dtype
    shape: Tuple[Optional[int], ...]  # None: dynamic (the batch axis)
    rule: ValueRule = ValueRule()

    def describe(self) -> str:
        dims = " x ".join("batch" if d is None else str(d) for d in self.shape)
        what = f" ({self.rule.meaning})" if self.rule.meaning else ""
        return f"{self.name}{what}: {np.dtype(self.dtype).name} [{dims}]"


def dtype_of(x: Any) -> np.dtype:
    """numpy dtype of a numpy array or torch tensor."""
    if isinstance(x, np.ndarray):
        return x.dtype
    import torch

    if isinstance(x, torch.Tensor):
        name = str(x.dtype).replace("torch.", "")
        try:
            return np.dtype(name)
        except TypeError:  # bfloat16, complex32, ...: no numpy twin, never a valid input here
            raise InputError(f"torch dtype {name} is not an input type of this model") from None
    raise InputError(f"expected a numpy array or a torch tensor, got {type(x).__name__}")


def is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def check_feeds(
    metas: Mapping[str, TensorMeta],
    feeds: Mapping[str, Any],
    values: bool = True,
    batch_range: Optional[Tuple[int, int]] = None,
) -> int:
    """Raise InputError naming the first problem; return the batch size."""
    if not isinstance(feeds, Mapping):
        raise InputError(f"feeds must be a dict of input name -> array, got {type(feeds).__name__}")
    missing = [m for n, m in metas.items() if n not in feeds]
    if missing:
        given = ", ".join(sorted(feeds)) or "nothing"
        raise InputError(f"missing input {missing[0].describe()} (given: {given})")
    batch = None
    for name, meta in metas.items():
        x = feeds[name]
        dt = dtype_of(x)
        if dt != np.dtype(meta.dtype):
            raise InputError(f"input {name!r} is {dt.name}, expected {meta.describe()}")
        shape = tuple(x.shape)
        if len(shape) != len(meta.shape) or any(
            want is not None and got != want for got, want in zip(shape, meta.shape)
        ):
            raise InputError(f"input {name!r} has shape {list(shape)}, expected {meta.describe()}")
        if batch is not None and shape[0] != batch:
            raise InputError(
                f"input {name!r} has batch {shape[0]} but the other inputs have "
                f"{batch}: give every input the same batch size"
            )
        batch = shape[0]
        if values:
            check_values(name, x, meta.rule)
    if batch is not None and batch_range is not None and not batch_range[0] <= batch <= batch_range[1]:
        lo, hi = batch_range
        raise InputError(
            f"batch {batch} is outside this engine's profile ({lo}..{hi}): feed "
            f"batches of {lo}..{hi}, or rebuild the engine with --batch {lo} {lo} "
            f"{max(batch, hi)}"
        )
    return int(batch or 0)


def _where(flat_index: int, shape: Sequence[int]) -> str:
    idx = [int(i) for i in np.unravel_index(int(flat_index), tuple(shape))]
    if len(shape) == 2:
        return f"row {idx[0]}, column {idx[1]}"
    if len(shape) == 3:
        return f"image {idx[0]}, row {idx[1]}, column {idx[2]}"
    if len(shape) == 4 and shape[1] == 1:  # B, 1, H, W
        return f"image {idx[0]}, row {idx[2]}, column {idx[3]}"
    return f"index {tuple(idx)}"


def _named(name: str) -> str:
    """Graph tensors are quoted (``input 'label_map'``); application-level names are not."""
    return f"input {name!r}" if "_" in name or name.isidentifier() else name


def check_values(name: str, x: Any, rule: ValueRule) -> None:
    if rule.ids_below is None and not rule.finite:
        return
    if is_torch(x):
        import torch

        if rule.ids_below is not None:
            bad = ((x < 0) | (x >= rule.ids_below)) & (x != DONT_CARE)
        else:
            bad = ~torch.isfinite(x)
        count = int(bad.sum())  # one synchronisation; the data stays where it is
        if not count:
            return
        first = int(bad.reshape(-1).nonzero()[0, 0])
        value = x.reshape(-1)[first].item()
    else:
        if rule.ids_below is not None:
            bad = ((x < 0) | (x >= rule.ids_below)) & (x != DONT_CARE)
        else:
            bad = ~np.isfinite(x)
        count = int(np.count_nonzero(bad))
        if not count:
            return
        first = int(np.flatnonzero(bad)[0])
        value = x.reshape(-1)[first].item()
    where = _where(first, x.shape)
    if rule.ids_below is not None:
        raise InputError(
            f"{_named(name)} holds class id {value} ({count} pixel{'s' * (count > 1)}, first at "
            f"{where}); this model knows ids 0..{rule.ids_below - 1} and {DONT_CARE} (don't care): "
            f"is the label map for another dataset, or a colour image rather than class ids?"
        )
    raise InputError(
        f"{_named(name)} holds {count} NaN/inf value{'s' * (count > 1)} (first {value} at {where})"
    )


def value_rules(cfg) -> Dict[str, ValueRule]:
    """The value rules of a generator configuration's possible inputs, by tensor name."""
    return {
        "label_map": ValueRule(ids_below=cfg.one_hot_channels, meaning="class ids"),
        "instance_map": ValueRule(meaning="instance ids; edges are computed from it"),
        "label": ValueRule(finite=True, meaning="the generator's float input"),
        "rgb": ValueRule(meaning="RGB image, 0..255"),
    }
