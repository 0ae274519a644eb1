"""The full-resolution stream: a spatially-varying per-pixel MLP (the authors' HR stream).

Pixel (y, x) runs the MLP whose weights sit in grid cell (y // S, x // S). Like the authors, the
image is viewed as S x S tiles and each layer is one batched MatMul over the grid, so the
upsampled parameters (num_params * H * W values) are never materialised.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..mlp_spec import LEAKY_RELU_SLOPE, MLPSpec


class PixelwiseMLP(nn.Module):
    """``forward(x, params)``: x (B, in_channels, H, W), params (B, num_params, H/S, W/S)."""

    def __init__(self, spec: MLPSpec) -> None:
        super().__init__()
        self.spec = spec
        self.register_buffer("encoding_tile", spec.positional_encoding_tile(), persistent=False)

    def forward(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        spec = self.spec
        k = spec.downsampling
        c, height, width = x.shape[1], x.shape[2], x.shape[3]
        h, w = height // k, width // k
        # (B, C, h, k, w, k) -> (B, h, w, k*k, C): rows of a tile first, then columns
        tiles = x.reshape(-1, c, h, k, w, k).permute(0, 2, 4, 3, 5, 1).reshape(-1, h, w, k * k, c)
        enc = self.encoding_tile.to(x.dtype).expand(tiles.shape[0], h, w, k * k, spec.pe_channels)
        out = torch.cat([tiles, enc], dim=-1)
        grid = params.permute(0, 2, 3, 1)  # (B, h, w, num_params)
        last = len(spec.layers) - 1
        for i, layer in enumerate(spec.layers):
            b = grid[..., layer.bias_offset : layer.bias_offset + layer.c_out].unsqueeze(3)
            wt = grid[..., layer.weight_offset : layer.end].reshape(-1, h, w, layer.c_in, layer.c_out)
            out = torch.matmul(out, wt) + b
            out = torch.tanh(out) if i == last else F.leaky_relu(out, LEAKY_RELU_SLOPE)
        co = spec.out_channels
        out = out.reshape(-1, h, w, k, k, co).permute(0, 5, 1, 3, 2, 4)
        return out.reshape(-1, co, height, width)
