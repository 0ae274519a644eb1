"""An independent oracle for the ASAP-Net generator, for tests only.

Written straight from ``shared/reference/asapnet-architecture.md`` in the authors' style (unfold,
a per-frequency coordinate loop, a numpy-built blur, explicit channel splits) and deliberately
sharing no code with ``asap_deploy``: a wrong parameter layout, encoding, padding or blur in the
package cannot hide behind a shared helper.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def reference_coords(bs, h, w, ds):
    """The authors' ``_get_coords``: raw pixel indices, periods ds, ds/2, ..., 2."""
    x = torch.arange(0, w).float()
    y = torch.arange(0, h).float()
    out = []
    f = ds
    while f > 1:
        xm = torch.remainder(x, f)
        ym = torch.remainder(y, f)
        xc = 2 * math.pi * xm / f
        yc = 2 * math.pi * ym / f
        cx = torch.cos(xc).view(1, 1, 1, w).expand(bs, 1, h, w)
        sx = torch.sin(xc).view(1, 1, 1, w).expand(bs, 1, h, w)
        cy = torch.cos(yc).view(1, 1, h, 1).expand(bs, 1, h, w)
        sy = torch.sin(yc).view(1, 1, h, 1).expand(bs, 1, h, w)
        out += [cx, sx, cy, sy]
        f = f / 2
    return torch.cat(out, 1)


def reference_blur(x, stride):
    k = np.concatenate([np.arange(1, 2 * stride, 2), np.arange(2 * stride - 1, 0, -2)])
    k = k / (2.0 * stride * stride)
    c = x.shape[1]
    kh = torch.tensor(k, dtype=torch.float32).view(1, 1, 1, -1).repeat(c, 1, 1, 1)
    kv = torch.tensor(k, dtype=torch.float32).view(1, 1, -1, 1).repeat(c, 1, 1, 1)
    x = nn.ReflectionPad2d(stride // 2)(x)
    x = F.conv2d(x, kh, stride=(1, stride), groups=c)
    return F.conv2d(x, kv, stride=(stride, 1), groups=c)


def reference_lowres(state, x, padding, strided, depth):
    """Run the LR stream directly from the state dict's tensors, by the index formulas."""
    p = "lowres_stream.model."
    reflect = padding != "zero"
    pad_mode = {"reflect": "reflect", "replicate": "replicate"}.get(padding)

    def cir(x, key, stride):
        if reflect:
            x = F.pad(x, (1, 1, 1, 1), mode=pad_mode)
        x = F.conv2d(x, state[key + "0.weight"], stride=stride, padding=0 if reflect else 1)
        x = F.instance_norm(x, weight=state[key + "1.weight"], bias=state[key + "1.bias"], eps=1e-5)
        return F.relu(x)

    first = 1 if reflect else 0
    x = cir(x, f"{p}{first}.", 1)
    for i in range(strided):
        idx = 4 + 3 * i if reflect else 2 + 2 * i
        x = cir(x, f"{p}{idx}.", 2)
    for j in range(depth):
        idx = 3 + 3 * strided + j if reflect else 2 + 2 * strided + j
        x = cir(x, f"{p}{idx}.conv_block.{1 if reflect else 0}.", 1)
    last = (3 + 3 * strided + depth) if reflect else (2 + 2 * strided + depth)
    return F.conv2d(x, state[f"{p}{last}.weight"], state[f"{p}{last}.bias"])


def reference_hr(x, params, ds, channels):
    """The authors' HR stream: unfold into tiles, split the channels bias-first, c_in-major."""
    bs, _, h, w = x.shape
    k = int(ds)
    x = torch.cat([x, reference_coords(bs, h, w, ds)], 1)
    nci = x.shape[1]
    tiles = x.unfold(2, k, k).unfold(3, k, k)
    tiles = tiles.permute(0, 2, 3, 4, 5, 1).contiguous().view(bs, h // k, w // k, k * k, nci)
    out = tiles
    idx = 0
    nl = len(channels) - 1
    for l in range(nl):
        ci, co = channels[l], channels[l + 1]
        b = params[:, idx : idx + co]
        idx += co
        wt = params[:, idx : idx + ci * co]
        idx += ci * co
        wt = wt.permute(0, 2, 3, 1).view(bs, h // k, w // k, ci, co)
        b = b.permute(0, 2, 3, 1).view(bs, h // k, w // k, 1, co)
        out = torch.matmul(out, wt) + b
        out = F.leaky_relu(out, 0.01) if l < nl - 1 else torch.tanh(out)
    assert idx == params.shape[1]
    co = channels[-1]
    out = out.view(bs, h // k, w // k, k, k, co).permute(0, 5, 1, 3, 2, 4)
    return out.reshape(bs, co, h, w)


def reference_generator(
    state, label, *, padding, lr_instance, strided=4, depth=None, hr_width=64, hr_depth=5, output_nc=3
):
    """Full generator from a state dict. ``depth`` defaults to the number of blocks found."""
    if depth is None:
        depth = len({k.split(".")[2] for k in state if ".conv_block." in k})
    h = label.shape[2]
    ds = h // 16
    s1 = ds // (2**strided)
    xl = label if s1 == 1 else reference_blur(label, s1)
    params = reference_lowres(state, xl, padding, strided, depth)
    xh = label[:, :-1] if lr_instance else label
    c0 = xh.shape[1] + 4 * int(math.log2(ds))
    channels = [c0] + [hr_width] * (hr_depth - 1) + [output_nc]
    return reference_hr(xh, params, ds, channels), params
