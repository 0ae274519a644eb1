"""What the HTTP API of ``python -m asap_deploy.serve`` accepts and answers, without Ray.

``POST /v1/translate`` takes the model's input as the whole body (``Content-Type: image/png``, or
``application/octet-stream``) or, for models with instance edges, as ``multipart/form-data`` with
the parts ``label`` and ``instance`` (what ``curl -F label=@a.png -F instance=@b.png`` sends).
RGB models (``--no_one_hot``) take any image Pillow reads; their part may be named ``image``.
Every problem with a request is a :class:`RequestError`: its HTTP status and one line that says
what was expected. Multipart bodies are parsed in memory (python-multipart's push parser): nothing
a request carries is spooled to disk.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np

from ..errors import InputError

#: a 1024x2048 label PNG is ~50 KB and an RGB one ~5 MB: anything far larger is not an input
MAX_BODY_BYTES = 32 << 20
#: images with more pixels than this many times the model's are refused before they are decoded
MAX_PIXELS_FACTOR = 4

BODY_TYPES = ("image/png", "application/octet-stream")
RGB_BODY_TYPES = BODY_TYPES + ("image/jpeg", "image/bmp", "image/webp")
MAIN_PARTS = ("label",)
RGB_MAIN_PARTS = ("label", "image")
INSTANCE_PART = "instance"
USAGE = (
    "send the label map as the body with Content-Type: image/png, or multipart/form-data with "
    "parts 'label' and 'instance'"
)


class RequestError(InputError):
    """A request the server cannot use: ``status`` is the HTTP status it is answered with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status

    def __reduce__(self):  # keeps the status across Ray's pickling to handle callers
        return (type(self), (str(self), self.status))


@dataclass(frozen=True)
class ModelInput:
    """What a model takes, as far as decoding a request is concerned."""

    height: int
    width: int
    rgb: bool
    needs_instance: bool


@dataclass
class Inputs:
    """The encoded images of one request."""

    main: bytes
    instance: Optional[bytes] = None


def one_line(message: str) -> str:
    return " ".join(part.strip() for part in str(message).splitlines() if part.strip())


def media_type(content_type: Optional[str]) -> Tuple[str, Dict[str, str]]:
    """``multipart/form-data; boundary=x`` -> (``multipart/form-data``, {``boundary``: ``x``})."""
    from python_multipart.multipart import parse_options_header

    kind, params = parse_options_header(content_type or "")
    return (
        kind.decode("latin-1").strip().lower(),
        {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in params.items()},
    )


def split_request(content_type: Optional[str], body: bytes, model: ModelInput) -> Inputs:
    """The encoded main image (and instance map) a ``/v1/translate`` request carries."""
    kind, params = media_type(content_type)
    if kind == "multipart/form-data":
        parts = parse_multipart(body, params.get("boundary", ""))
        names = RGB_MAIN_PARTS if model.rgb else MAIN_PARTS
        mains = [n for n in names if n in parts]
        unknown = sorted(set(parts) - set(names) - {INSTANCE_PART})
        if unknown:
            raise RequestError(
                f"unknown form part(s) {', '.join(map(repr, unknown))}: the parts "
                f"are {' or '.join(map(repr, names))} and {INSTANCE_PART!r}"
            )
        if len(mains) != 1:
            raise RequestError(
                f"the form needs exactly one part {' or '.join(map(repr, names))} "
                f"(the model's input image), got {len(mains)}"
            )
        inputs = Inputs(parts[mains[0]], parts.get(INSTANCE_PART))
    elif kind in (RGB_BODY_TYPES if model.rgb else BODY_TYPES):
        inputs = Inputs(body)
    else:
        got = f"unsupported Content-Type {one_line(kind)[:80]}" if kind else "no Content-Type"
        raise RequestError(f"{got}: {USAGE}", status=415)
    return inputs


def parse_multipart(body: bytes, boundary: str) -> Dict[str, bytes]:
    """The named parts of a multipart/form-data body, in memory; a malformed body is a 400."""
    from python_multipart.exceptions import MultipartParseError
    from python_multipart.multipart import MultipartParser, parse_options_header

    # the parser logs every malformed body as a warning: the 400 answer says it already
    logging.getLogger("python_multipart").setLevel(logging.ERROR)
    if not boundary:
        raise RequestError("multipart/form-data without a boundary parameter in Content-Type")
    parts: Dict[str, bytes] = {}
    state = {"field": b"", "value": b"", "headers": {}, "data": [], "ended": False}

    def on_part_begin() -> None:
        state["headers"], state["data"] = {}, []

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["value"] += data[start:end]

    def on_header_end() -> None:
        state["headers"][state["field"].decode("latin-1").lower()] = state["value"]
        state["field"], state["value"] = b"", b""

    def on_part_data(data: bytes, start: int, end: int) -> None:
        state["data"].append(data[start:end])

    def on_part_end() -> None:
        disposition = state["headers"].get("content-disposition", b"")
        kind, params = parse_options_header(disposition)
        name = params.get(b"name")
        if kind != b"form-data" or name is None:
            raise RequestError("a multipart part without Content-Disposition: form-data; name=...")
        key = name.decode("utf-8", "replace")
        if key in parts:
            raise RequestError(f"the form has part {key!r} twice")
        parts[key] = b"".join(state["data"])

    def on_end() -> None:
        state["ended"] = True

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
            "on_end": on_end,
        },
    )
    try:
        parser.write(body)
        parser.finalize()
    except MultipartParseError as exc:
        raise RequestError(f"malformed multipart/form-data body ({one_line(exc)})") from None
    if not state["ended"]:
        raise RequestError("malformed multipart/form-data body: it ends before its closing boundary")
    return parts


class _NamedBytes(io.BytesIO):
    """Encoded image bytes that ``image_io``'s messages name as the request part they came from."""

    def __init__(self, data: bytes, name: str) -> None:
        super().__init__(data)
        self._name = name

    def __str__(self) -> str:
        return self._name


def decode_image(data: bytes, what: str, model: ModelInput, ids: bool = True) -> np.ndarray:
    """Pixels of one encoded image, read as ``python -m asap_deploy.translate`` reads files:
    ids for label and instance maps (PNG only: ids must be lossless), RGB for RGB models."""
    from PIL import Image, UnidentifiedImageError

    from .. import image_io

    if not data:
        raise RequestError(f"the {what} is empty (0 bytes): {USAGE}")
    try:
        with Image.open(io.BytesIO(data)) as img:  # the header only: no pixels decoded yet
            fmt, (w, h) = img.format, img.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        head = data[:8]
        raise RequestError(
            f"the {what} is not an image ({len(data)} bytes starting {head!r}): {USAGE}"
        ) from None
    if ids and fmt != "PNG":
        raise RequestError(f"the {what} is a {fmt} image: ids must be stored losslessly, send a PNG")
    if w * h > MAX_PIXELS_FACTOR * model.height * model.width:
        raise RequestError(
            f"the {what} is {h} x {w} (H x W) but this model runs at {model.height} x {model.width}"
        )
    named = _NamedBytes(data, f"the {what}")
    return image_io.read_ids(named, what) if ids else image_io.read_rgb(named)


def decode_inputs(inputs: Inputs, model: ModelInput) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """(main array, instance array or None) of a split request."""
    main = decode_image(inputs.main, "RGB image" if model.rgb else "label map", model, ids=not model.rgb)
    if model.needs_instance and inputs.instance is None:
        raise RequestError(
            "this model uses instance edges: send multipart/form-data with parts "
            "'label' (class ids) and 'instance' (instance ids, e.g. Cityscapes "
            "*_instanceIds.png)"
        )
    if not model.needs_instance and inputs.instance is not None:
        raise RequestError(
            "this model has no instance-edge channel (trained without instance "
            "maps): drop the 'instance' part"
        )
    inst = None if inputs.instance is None else decode_image(inputs.instance, "instance map", model)
    return main, inst
