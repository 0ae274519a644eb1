"""An independent oracle for the label preprocessing the authors do outside the generator.

Written from ``shared/reference/asapnet-architecture.md`` section 4 (the authors'
``pix2pix_dataset.py``, ``pix2pix_model.preprocess_input`` and ``get_edges``), in their style:
an in-place 255 -> ``label_nc`` rewrite, a ``scatter_`` one-hot, and edges OR-ed in from four
shifted comparisons. It shares no code with ``asap_deploy`` (in particular not ``LabelEncoder``),
so a broken encoder cannot hide behind the reference that the parity tests compare it with.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

DONT_CARE_ID = 255


def reference_one_hot(label_map, label_nc: int, contain_dontcare_label: bool) -> torch.Tensor:
    """(B, 1, H, W) integer ids -> (B, label_nc [+1], H, W) float one-hot.

    Like the authors, an id that has no channel (255 without ``contain_dontcare_label``, or any id
    beyond the last class) is an error here: ``scatter_`` raises on it.
    """
    ids = torch.as_tensor(np.asarray(label_map)).long().clone()
    ids[ids == DONT_CARE_ID] = label_nc  # the dataset's `label[label == 255] = label_nc`
    bs, _, h, w = ids.shape
    nc = label_nc + 1 if contain_dontcare_label else label_nc
    return torch.zeros(bs, nc, h, w).scatter_(1, ids, 1.0)


def reference_edges(instance_map) -> torch.Tensor:
    """The authors' ``get_edges``: 1 where a pixel differs from its left, right, upper or lower
    neighbour, so both pixels on either side of every boundary are marked."""
    t = torch.as_tensor(np.asarray(instance_map)).long()
    edge = torch.zeros(t.shape, dtype=torch.bool)
    edge[:, :, :, 1:] |= t[:, :, :, 1:] != t[:, :, :, :-1]
    edge[:, :, :, :-1] |= t[:, :, :, 1:] != t[:, :, :, :-1]
    edge[:, :, 1:, :] |= t[:, :, 1:, :] != t[:, :, :-1, :]
    edge[:, :, :-1, :] |= t[:, :, 1:, :] != t[:, :, :-1, :]
    return edge.float()


def reference_label(
    label_map,
    instance_map: Optional[object],
    *,
    label_nc: int,
    contain_dontcare_label: bool,
    instance_edge: bool,
) -> torch.Tensor:
    """The float ``label`` tensor the authors' generator receives: one-hot, then the edge map
    as the last channel when instance edges are used."""
    semantics = reference_one_hot(label_map, label_nc, contain_dontcare_label)
    if not instance_edge:
        return semantics
    if instance_map is None:
        raise ValueError("instance edges are used: an instance map is needed")
    return torch.cat([semantics, reference_edges(instance_map)], 1)


def reference_label_for(cfg, maps) -> torch.Tensor:
    """``reference_label`` for a ``GeneratorConfig`` and a dict with ``label_map`` and, when
    the model uses instance edges, ``instance_map``."""
    return reference_label(
        maps["label_map"],
        maps.get("instance_map"),
        label_nc=cfg.label_nc,
        contain_dontcare_label=cfg.contain_dontcare_label,
        instance_edge=cfg.instance_edge,
    )
