"""The one description of ASAP-Net's spatially-varying pixelwise MLP.

Everything that touches the per-pixel MLP derives from :class:`MLPSpec`: the PyTorch model, the
ONNX graphs, the custom ONNX node's attributes, the CUDA kernel's host-side reference test and the
TensorRT plugin (which re-derives the same offsets from the node's attributes; the kernels' header
is checked against :meth:`MLPSpec.layers` by
``tests/test_kernel_reference.py::test_layout_matches_mlp_spec``).

Layout of the parameter grid produced by the low-resolution stream (authors' ``splits`` dict):
layers are stored in order, each as ``[bias (c_out), weight (c_in * c_out)]``, bias first, with the
weight block c_in-major: channel ``weight_offset + i * c_out + o`` holds ``W[i, o]`` and the layer
computes ``y = x @ W + b``.

Positional encoding: for the periods ``f = S, S/2, ..., 2`` (lowest frequency first), four
channels ``cos(2 pi (x mod f) / f), sin(...x...), cos(...y...), sin(...y...)`` with x, y raw pixel
indices. The periods divide S, so every S x S tile sees the same encoding: it is stored once, as
one tile, which keeps it independent of batch size and image width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Dict, List, Tuple

if TYPE_CHECKING:  # torch loads on first use
    import torch

LEAKY_RELU_SLOPE = 0.01


@dataclass(frozen=True)
class LayerSlice:
    """Where one linear layer's bias and weight live in the parameter grid's channels."""

    c_in: int
    c_out: int
    bias_offset: int
    weight_offset: int

    @property
    def end(self) -> int:
        return self.weight_offset + self.c_in * self.c_out


def _log2_exact(value: int, what: str) -> int:
    if value < 2 or value & (value - 1):
        raise ValueError(f"{what} must be a power of two >= 2, got {value}")
    return value.bit_length() - 1


@dataclass(frozen=True)
class MLPSpec:
    """Shape of the per-pixel MLP.

    in_channels: label channels that reach the MLP (the positional encoding is appended after).
    downsampling: S, the side of the tile that shares one MLP; also sets the encoding periods.
    hidden_width / depth: ``hr_width`` / ``hr_depth`` (depth counts linear layers).
    """

    in_channels: int
    downsampling: int
    hidden_width: int = 64
    depth: int = 5
    out_channels: int = 3

    def __post_init__(self) -> None:
        _log2_exact(self.downsampling, "downsampling factor S")
        if self.in_channels < 1 or self.hidden_width < 1 or self.out_channels < 1:
            raise ValueError(f"MLP widths must be positive: {self}")
        if self.depth < 2:
            raise ValueError(f"MLP depth (hr_depth) must be >= 2, got {self.depth}")

    @property
    def num_frequencies(self) -> int:
        return _log2_exact(self.downsampling, "downsampling factor S")

    @property
    def pe_channels(self) -> int:
        return 4 * self.num_frequencies

    @property
    def periods(self) -> List[int]:
        return [self.downsampling >> i for i in range(self.num_frequencies)]

    @property
    def channels(self) -> List[int]:
        first = self.in_channels + self.pe_channels
        return [first] + [self.hidden_width] * (self.depth - 1) + [self.out_channels]

    @property
    def layers(self) -> Tuple[LayerSlice, ...]:
        out, off = [], 0
        ch = self.channels
        for c_in, c_out in zip(ch[:-1], ch[1:]):
            out.append(LayerSlice(c_in, c_out, off, off + c_out))
            off += c_out + c_in * c_out
        return tuple(out)

    @property
    def num_params(self) -> int:
        return self.layers[-1].end

    @property
    def macs_per_pixel(self) -> int:
        ch = self.channels
        return sum(a * b for a, b in zip(ch[:-1], ch[1:]))

    @classmethod
    def solve_first_width(
        cls, num_params: int, hidden_width: int, depth: int, out_channels: int
    ) -> int | None:
        """C0 (label + encoding channels) that gives ``num_params``, or None if none does."""
        rest = (depth - 2) * (hidden_width + 1) * hidden_width + (hidden_width + 1) * out_channels
        numerator = num_params - rest
        if numerator <= 0 or numerator % hidden_width:
            return None
        first = numerator // hidden_width - 1
        return first if first > 0 else None

    # -- positional encoding -------------------------------------------------------------------
    def positional_encoding_tile(self) -> torch.Tensor:
        """Encoding of one S x S tile as a float32 tensor of shape (S*S, pe_channels).

        Row ``dy * S + dx`` is pixel (dy, dx) of the tile, the order the tiled MLP uses. The
        arithmetic mirrors the authors' (float32 arange, remainder first, then 2*pi*r/f with a
        Python-float pi, cos/sin on the CPU) so that the encoding is bit-identical to theirs.
        """
        import torch

        s = self.downsampling
        coord = torch.arange(s, dtype=torch.float32)
        ys, xs = torch.meshgrid(coord, coord, indexing="ij")
        chans = []
        for period in self.periods:
            f = float(period)
            ax = 2 * math.pi * torch.remainder(xs, f) / f
            ay = 2 * math.pi * torch.remainder(ys, f) / f
            chans += [torch.cos(ax), torch.sin(ax), torch.cos(ay), torch.sin(ay)]
        return torch.stack(chans, dim=-1).reshape(s * s, self.pe_channels)

    # -- custom ONNX node / plugin attributes --------------------------------------------------
    def plugin_attributes(self) -> Dict[str, int]:
        return {
            "in_channels": self.in_channels,
            "hidden_width": self.hidden_width,
            "depth": self.depth,
            "out_channels": self.out_channels,
            "downsampling": self.downsampling,
            "num_frequencies": self.num_frequencies,
        }

    @classmethod
    def from_plugin_attributes(cls, attrs: Dict[str, int]) -> MLPSpec:
        spec = cls(
            int(attrs["in_channels"]),
            int(attrs["downsampling"]),
            int(attrs["hidden_width"]),
            int(attrs["depth"]),
            int(attrs["out_channels"]),
        )
        if int(attrs.get("num_frequencies", spec.num_frequencies)) != spec.num_frequencies:
            raise ValueError("num_frequencies must equal log2(downsampling)")
        return spec
