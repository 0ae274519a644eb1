"""The Ray Serve deployment: ``asap_deploy.load()`` in each replica, requests batched.

    from ray import serve
    from asap_deploy.serving.ray_app import translator_app

    handle = serve.run(translator_app("build/cityscapes-256x512", replicas=2), route_prefix="/")
    png = handle.translate.remote(label_png, instance_png).result()       # bytes, as over HTTP
    image = handle.generate.remote(label_ids, instance_ids).result()      # (H, W, 3) uint8

HTTP (route prefix ``/``): ``GET /healthz`` (200 and the model's description once the replica has
loaded it), ``POST /v1/translate`` (``http_codec`` says what it takes; the answer is the PNG that
``image_io.png_bytes(asap_deploy.load(EXPORT)(...))`` gives, with the size of the batch it ran in
as ``X-Batch-Size``). HTTP requests and handle calls share one ``@serve.batch`` queue per replica.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from ..errors import InputError
from . import http_codec
from .http_codec import RequestError

logger = logging.getLogger("ray.serve")

APP_NAME = "asapnet"
TRANSLATE_ROUTE = "/v1/translate"
HEALTH_ROUTE = "/healthz"
#: seconds a stopping replica waits for the requests it holds (a 1024x2048 CPU batch takes seconds)
GRACEFUL_SHUTDOWN_S = 10.0


@dataclass
class _Result:
    """One request's share of a batch: its image or its input error, and the batch size."""

    image: Optional[np.ndarray]
    error: Optional[InputError]
    batch: int


@serve.deployment(name="asapnet")
class Translator:
    """One replica: the export loaded once, every request run through one batch queue."""

    def __init__(
        self,
        export: str,
        backend: str = "auto",
        device: Optional[str] = None,
        max_batch: int = 4,
        batch_wait_s: float = 0.01,
    ) -> None:
        from ..application import load

        self.gen = load(export, backend=backend, device=device)
        self._infer.set_max_batch_size(max_batch)
        self._infer.set_batch_wait_timeout_s(batch_wait_s)
        # the runner's upload/compute/output sequence is stateful: one thread runs every batch,
        # and the event loop stays free to take the requests that form the next one
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="asap-infer")
        self.model = http_codec.ModelInput(
            self.gen.height, self.gen.width, self.gen.input_mode == "rgb", bool(self.gen.needs_instance_map)
        )
        self.info: Dict[str, Any] = {
            "status": "ok",
            "model": str(self.gen.export.path),
            "backend": self.gen.backend,
            "height": self.gen.height,
            "width": self.gen.width,
            "input": self.gen.input_mode,
            "instance_map": self.model.needs_instance,
            "max_batch": max_batch,
            "batch_wait_ms": batch_wait_s * 1000.0,
        }
        for note in self.gen.notes:
            logger.warning("asap_deploy: %s", note)

    # -- handle API ---------------------------------------------------------------------------
    async def translate(self, label_png: bytes, instance_png: Optional[bytes] = None) -> bytes:
        """Encoded label map (and instance map) -> PNG bytes, exactly what HTTP answers."""
        main, inst = await self._decode(http_codec.Inputs(label_png, instance_png))
        return (await self._translate(main, inst))[0]

    async def generate(self, x: np.ndarray, instance_map: Optional[np.ndarray] = None) -> np.ndarray:
        """One label map (H x W ids) or RGB image (H x W x 3) -> (H, W, 3) uint8 image."""
        res = await self._infer(np.asarray(x), None if instance_map is None else np.asarray(instance_map))
        if res.error is not None:
            raise res.error
        return res.image

    def describe(self) -> Dict[str, Any]:
        return dict(self.info)

    # -- HTTP ---------------------------------------------------------------------------------
    async def __call__(self, request: Request) -> Response:
        path = request.url.path.rstrip("/") or "/"
        if path == HEALTH_ROUTE:
            if request.method not in ("GET", "HEAD"):
                return _error(405, f"{path} answers GET", allow="GET, HEAD")
            return JSONResponse(self.info)
        if path != TRANSLATE_ROUTE:
            return _error(
                404,
                f"no route {path}: POST {TRANSLATE_ROUTE} (label map PNG in, "
                f"image PNG out) or GET {HEALTH_ROUTE}",
            )
        if request.method != "POST":
            return _error(405, f"{path} answers POST: {http_codec.USAGE}", allow="POST")
        try:
            body = await _read_body(request)
            inputs = http_codec.split_request(request.headers.get("content-type"), body, self.model)
            main, inst = await self._decode(inputs)
            png, batch = await self._translate(main, inst)
        except RequestError as exc:
            return _error(exc.status, str(exc))
        except InputError as exc:
            return _error(400, str(exc))
        except Exception as exc:  # noqa: BLE001 - a 500 with one line; the traceback is logged
            logger.exception("asap_deploy: request failed")
            return _error(
                500,
                f"internal error ({type(exc).__name__}: "
                f"{http_codec.one_line(exc) or 'no message'}); see the server log",
            )
        return Response(png, media_type="image/png", headers={"X-Batch-Size": str(batch)})

    # -- batching -----------------------------------------------------------------------------
    async def _decode(self, inputs: http_codec.Inputs) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        # PNG decoding of a 1024x2048 map takes milliseconds: off the event loop, like encoding
        return await asyncio.get_running_loop().run_in_executor(
            None, http_codec.decode_inputs, inputs, self.model
        )

    async def _translate(self, main: np.ndarray, inst: Optional[np.ndarray]) -> Tuple[bytes, int]:
        from ..image_io import png_bytes

        res = await self._infer(main, inst)
        if res.error is not None:
            raise res.error
        png = await asyncio.get_running_loop().run_in_executor(None, png_bytes, res.image)
        return png, res.batch

    @serve.batch(max_batch_size=4, batch_wait_timeout_s=0.01)
    async def _infer(self, xs: List[np.ndarray], insts: List[Optional[np.ndarray]]) -> List[_Result]:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._run, xs, insts)

    def _run(self, xs: List[np.ndarray], insts: List[Optional[np.ndarray]]) -> List[_Result]:
        """One call for the batch; an input error in it is found again item by item, so each
        request gets its own answer."""
        n = len(xs)
        same = (
            len({(x.shape, x.dtype.str) for x in xs}) == 1
            and len({None if i is None else (i.shape, i.dtype.str) for i in insts}) == 1
        )
        if n > 1 and same:
            try:
                images = self.gen(np.stack(xs), None if insts[0] is None else np.stack(insts))
                return [_Result(img, None, n) for img in images]
            except InputError:
                pass
        out = []
        for x, inst in zip(xs, insts):
            try:
                out.append(_Result(self.gen(x, inst), None, 1))
            except InputError as exc:
                out.append(_Result(None, exc, 1))
        return out

    # -- lifecycle ----------------------------------------------------------------------------
    def check_health(self) -> None:
        if not self.gen.runner.is_active:
            raise RuntimeError("the model was released")

    def __del__(self) -> None:
        # Serve calls this when it stops the replica: the engine's GPU memory goes back first
        gen = getattr(self, "gen", None)
        if gen is not None:
            gen.close()
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.shutdown(wait=False)


async def _read_body(request: Request) -> bytes:
    limit = http_codec.MAX_BODY_BYTES
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(
            f"request body of {int(declared)} bytes exceeds the {limit >> 20} MiB "
            f"limit: send one label map per request",
            status=413,
        )
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(
                f"request body exceeds the {limit >> 20} MiB limit: send one label map per request",
                status=413,
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _error(status: int, message: str, allow: Optional[str] = None) -> Response:
    headers = {"Allow": allow} if allow else None
    return PlainTextResponse(http_codec.one_line(message) + "\n", status_code=status, headers=headers)


def translator_app(
    export: str,
    backend: str = "auto",
    replicas: int = 1,
    max_batch: int = 4,
    batch_wait_ms: float = 10.0,
    num_gpus: float = 0.0,
    num_cpus: float = 1.0,
    device: Optional[str] = None,
):
    """The application ``serve.run`` deploys: ``replicas`` copies of the model, each given
    ``num_gpus`` GPUs (fractions share one) and ``num_cpus`` CPUs by Ray."""
    if device is None:
        device = "cuda" if num_gpus > 0 else "cpu"  # Ray sets CUDA_VISIBLE_DEVICES per replica
    return Translator.options(
        num_replicas=replicas,
        # room for one batch running and the next forming, else batches never fill up
        max_ongoing_requests=2 * max_batch,
        ray_actor_options={"num_cpus": num_cpus, "num_gpus": num_gpus},
        graceful_shutdown_timeout_s=GRACEFUL_SHUTDOWN_S,
        graceful_shutdown_wait_loop_s=0.5,
    ).bind(str(export), backend, device, max_batch, batch_wait_ms / 1000.0)
