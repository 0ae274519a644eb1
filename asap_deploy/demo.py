"""Built-in demo models: deterministic weights, no download, same shapes as the paper's.

Default PyTorch init makes the 1x1 head predict MLP weights of magnitude ~1 regardless of
fan-in, so the 5-layer per-pixel MLP amplifies any upstream rounding by 10-100x and the
output saturates - unlike a trained model. ``init_well_conditioned`` rescales the head so each
predicted layer has fan-in scaled (LeCun-style) weights: the demo behaves numerically like a
trained generator, which is what parity figures are about.
"""

from __future__ import annotations

import math

import torch

from .config import GeneratorConfig
from .model import ASAPNetGenerator


def init_well_conditioned(gen: ASAPNetGenerator, seed: int = 0) -> ASAPNetGenerator:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in gen.lowres_stream.named_parameters():
            if p.dim() == 4:
                fan_in = p.shape[1] * p.shape[2] * p.shape[3]
                p.copy_(torch.randn(p.shape, generator=g) * math.sqrt(2.0 / fan_in))
            elif name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
        head = gen.lowres_stream.model[-1]
        # LR features after IN+ReLU have a second moment of about 1/2 per channel
        feat = math.sqrt(head.in_channels / 2.0)
        std = torch.empty(head.out_channels)
        mean = torch.zeros(head.out_channels)
        for layer in gen.config.mlp_spec.layers:
            std[layer.bias_offset : layer.weight_offset] = 0.05
            std[layer.weight_offset : layer.end] = 1.0 / math.sqrt(layer.c_in)
        # half the variance is shared by the whole grid, half varies per cell
        head.weight.copy_(
            torch.randn(head.weight.shape, generator=g) * (std / math.sqrt(2.0) / feat).view(-1, 1, 1, 1)
        )
        head.bias.copy_(mean + torch.randn(head.out_channels, generator=g) * std / math.sqrt(2.0))
    return gen.eval()


def demo_generator(cfg: GeneratorConfig, seed: int = 0) -> ASAPNetGenerator:
    return init_well_conditioned(ASAPNetGenerator(cfg), seed)
