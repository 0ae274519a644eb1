"""PNG in and out for the applications (Pillow), read as the authors' data loader reads them.

Label maps: class ids straight from the pixels (mode ``L``/``P``/``I``: a palette PNG's indices are
its ids, as torchvision reads them). Instance maps: ``I;16``/``I``/``L`` ids (Cityscapes
``*_instanceIds.png``). RGB inputs (``--no_one_hot`` models): ``convert("RGB")``. Resizing, when
asked for, is the loader's: NEAREST for ids, BICUBIC for RGB. Writes are atomic.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from .errors import InputError
from .fileio import atomic_write

LABEL_SUFFIXES = (".png",)  # ids must be stored losslessly
RGB_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
_ID_MODES = ("L", "P", "I", "I;16", "I;16B", "I;16L")


def _open(path: Path):
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(path)
        img.load()
    except FileNotFoundError:
        raise InputError(f"{path} not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise InputError(f"{path} is not a readable image ({exc})") from None
    return img


def _resize(img, size: Optional[Tuple[int, int]], method: int):
    if size is None or img.size == (size[1], size[0]):
        return img
    return img.resize((size[1], size[0]), method)


def read_ids(path: Path, what: str = "label map", size: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """(H, W) integer ids from a label or instance PNG; ``size`` (H, W) resizes NEAREST."""
    from PIL import Image

    img = _open(path)
    if img.mode not in _ID_MODES:
        raise InputError(
            f"{path} is a {img.mode} image, not a {what} of ids (PNG mode L, P or "
            f"I;16): save the ids themselves, not a colourised rendering"
        )
    arr = np.asarray(_resize(img, size, Image.NEAREST))
    return arr if arr.dtype == np.uint8 else arr.astype(np.int32)


def read_rgb(path: Path, size: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """(H, W, 3) uint8; ``size`` (H, W) resizes BICUBIC as the authors' image transform does."""
    from PIL import Image

    img = _open(path).convert("RGB")
    return np.asarray(_resize(img, size, Image.BICUBIC))


def png_bytes(image: np.ndarray) -> bytes:
    """(H, W, 3) or (H, W) uint8 -> PNG file contents (deterministic for equal pixels)."""
    from PIL import Image

    arr = np.ascontiguousarray(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def write_png(path: Path, image: np.ndarray) -> None:
    atomic_write(Path(path), png_bytes(image))


# -- colours for looking at label maps -----------------------------------------------------------
#: Cityscapes label ids 0..33 (+ license plate) in the dataset's own colours; voids are black
CITYSCAPES_COLOURS = np.array(
    [
        (0, 0, 0),
        (0, 0, 0),
        (0, 0, 0),
        (0, 0, 0),
        (0, 0, 0),
        (111, 74, 0),
        (81, 0, 81),
        (128, 64, 128),
        (244, 35, 232),
        (250, 170, 160),
        (230, 150, 140),
        (70, 70, 70),
        (102, 102, 156),
        (190, 153, 153),
        (180, 165, 180),
        (150, 100, 100),
        (150, 120, 90),
        (153, 153, 153),
        (153, 153, 153),
        (250, 170, 30),
        (220, 220, 0),
        (107, 142, 35),
        (152, 251, 152),
        (70, 130, 180),
        (220, 20, 60),
        (255, 0, 0),
        (0, 0, 142),
        (0, 0, 70),
        (0, 60, 100),
        (0, 0, 90),
        (0, 0, 110),
        (0, 80, 100),
        (0, 0, 230),
        (119, 11, 32),
        (0, 0, 142),
    ],
    dtype=np.uint8,
)


def palette(n: int) -> np.ndarray:
    """(256, 3) colours: Cityscapes' for its 35 classes, else well-separated colours made by
    spreading the bits of (id + 1) over the high bits of R, G and B; 255 (don't care) is white."""
    if n == len(CITYSCAPES_COLOURS):
        out = np.zeros((256, 3), np.uint8)
        out[:n] = CITYSCAPES_COLOURS
    else:
        ids = np.arange(256) + 1
        out = np.zeros((256, 3), np.int64)
        for bit in range(8):
            for c in range(3):
                out[:, c] |= ((ids >> (3 * bit + c)) & 1) << (7 - bit)
        out = out.astype(np.uint8)
    out[255] = 255
    return out


def colourise(ids: np.ndarray, n: int) -> np.ndarray:
    """(H, W) ids -> (H, W, 3) uint8 colours."""
    return palette(n)[np.clip(ids, 0, 255).astype(np.intp)]


def side_by_side(left: np.ndarray, right: np.ndarray, gap: int = 4) -> np.ndarray:
    h = max(left.shape[0], right.shape[0])
    out = np.full((h, left.shape[1] + gap + right.shape[1], 3), 255, np.uint8)
    out[: left.shape[0], : left.shape[1]] = left
    out[: right.shape[0], left.shape[1] + gap :] = right
    return out
