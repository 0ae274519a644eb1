"""Label map in, image out: the Python API of a deployed generator.

    import asap_deploy

    gen = asap_deploy.load("build/cityscapes-256x512")     # TensorRT on a GPU, else ONNX Runtime
    image = gen(label_map, instance_map=instance_ids)      # (H, W, 3) uint8, as test.py saves it
    images = gen(label_maps, instance_map=instance_maps)   # (B, H, W, 3)

Label maps are class ids (H x W or B x H x W, any integer dtype; 255 is the authors' "don't care");
models trained with ``--no_one_hot`` take RGB images (H x W x 3 or B x H x W x 3, uint8) instead.
numpy arrays give numpy images; torch tensors give torch tensors, and on a GPU backend a CUDA
tensor stays on the GPU (bound to the engine as it is when it already has the engine's layout; the
images come back as CUDA tensors). Every input is checked first and a problem is one line
(``asap_deploy.errors.InputError``) saying what was expected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union, cast

import numpy as np

from .artifacts import ExportFolder, find_export
from .errors import ConfigError, InputError
from .postprocess import to_uint8_hwc
from .runners.base import Runner, RunnerUnavailable
from .runners.input_checks import ValueRule, check_values, dtype_of, is_torch, value_rules

BACKENDS = ("auto", "onnxruntime", "tensorrt", "tensorrt_rtx", "torch")
_ENGINE_SUFFIXES = (".plan", ".engine")
#: engines tried first: the plugin graph (fused MLP), then FP16
_GRAPH_ORDER = {
    ("asapnet_plugin", "fp16"): 0,
    ("asapnet", "fp16"): 1,
    ("asapnet_plugin", "fp32"): 2,
    ("asapnet", "fp32"): 3,
}


def load(
    model: Union[str, Path],
    backend: str = "auto",
    device: Optional[str] = None,
    precision: Optional[str] = None,
    check_inputs: bool = True,
) -> ImageGenerator:
    """Open an export (a folder made by ``python -m asap_deploy.export``, or an engine / ONNX file
    inside one) and return a generator object ready to be called.

    ``backend``: ``auto`` (a TensorRT engine of the export on a GPU, else ONNX Runtime: CUDA where
    onnxruntime-gpu is installed, else CPU), ``onnxruntime``, ``tensorrt``, ``tensorrt_rtx`` or
    ``torch`` (the PyTorch model the export came from). ``device``: ``cpu``, ``cuda`` or ``cuda:N``
    (default: a GPU when there is one). ``precision``: ``fp32`` or ``fp16`` graphs for ONNX Runtime
    and PyTorch (default: FP16 on a GPU, FP32 on a CPU). ``check_inputs=False`` skips the value
    checks (class-id range), which cost one pass over each input.

    The export is checked against its manifest first (the size and SHA-256 of every graph and
    indexed engine, and for ``torch`` the checkpoint): a damaged or swapped file is an
    ``ExportIntegrityError`` naming it and the command that recreates it, whichever backend
    would run. Hashes are cached while files are unchanged (``asap_deploy.hash_cache``).
    """
    if backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if precision not in (None, "fp32", "fp16"):
        raise ConfigError(f"precision must be fp32 or fp16, got {precision!r}")
    export, file = _open(Path(model))
    runner, notes = _choose_runner(export, file, backend, _device(device), precision)
    return ImageGenerator(export, runner, check_inputs, notes)


class ImageGenerator:
    """A generator ready to run: call it on label maps (or RGB images), get uint8 images."""

    def __init__(
        self,
        export: ExportFolder,
        runner: Runner,
        check_inputs: bool = True,
        notes: Optional[List[str]] = None,
    ) -> None:
        self.export, self.runner, self.check_inputs = export, runner, check_inputs
        self.notes = list(notes or [])
        cfg = export.config
        self.config = cfg
        self.input_mode = "rgb" if cfg.no_one_hot else "labels"
        self.height, self.width = export.height, export.width
        self.label_nc = cfg.label_nc
        self.needs_instance_map = cfg.instance_edge
        if not runner.is_active:
            runner.activate()
        self._graph_inputs = list(runner.input_metadata())
        self._encoder: Any = None  # a LabelEncoder, made on first use (torch loads then)
        self._rules = value_rules(cfg)

    # -- description --------------------------------------------------------------------------
    @property
    def backend(self) -> str:
        """The runner in use, e.g. ``trt-plugin-fp16-tensorrt`` or ``ort-cpu-fp32``."""
        return self.runner.name

    def __repr__(self) -> str:
        what = "RGB images" if self.input_mode == "rgb" else f"label maps ({self.label_nc} classes)"
        inst = " + instance maps" if self.needs_instance_map else ""
        return (
            f"ImageGenerator({self.export.path}, {self.height}x{self.width}, {what}{inst}, "
            f"backend {self.backend})"
        )

    # -- lifecycle ----------------------------------------------------------------------------
    def close(self) -> None:
        """Release the engine / session and its (GPU) memory."""
        self.runner.deactivate()

    def __enter__(self) -> ImageGenerator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        # an application object lets go of its engine with the last reference to it
        runner = getattr(self, "runner", None)
        if runner is not None and runner.is_active:
            try:
                runner.deactivate()
            except Exception:  # interpreter shutdown: modules may be gone
                pass

    # -- inference ----------------------------------------------------------------------------
    def __call__(self, x: Any, instance_map: Any = None) -> Any:
        """``x``: class ids (H, W) or (B, H, W), or for RGB models (H, W, 3) / (B, H, W, 3) uint8.
        Returns (H, W, 3) or (B, H, W, 3) uint8 images: numpy for numpy input, a torch tensor
        (on the input's device where the backend allows) for torch input."""
        if not self.runner.is_active:
            raise ConfigError("this generator was closed: load() it again")
        x, single = self._check_main(x)
        inst = self._check_instance(instance_map, x, single)
        batch = int(x.shape[0])
        if batch == 0:
            raise InputError("empty batch: pass at least one image")
        lo, hi = self.runner.batch_range() or (1, batch)
        outs = []
        for start in range(0, batch, hi):
            xs = x[start : start + hi]
            ins = None if inst is None else inst[start : start + hi]
            n = int(xs.shape[0])
            if n < lo:  # the engine's profile has a minimum batch: pad, then drop the padding
                xs, ins = _pad(xs, lo), None if ins is None else _pad(ins, lo)
            self.runner.upload(self._feeds(xs, ins))
            self.runner.compute()
            self.runner.synchronize()
            outs.append(to_uint8_hwc(self.runner.output())[:n])
        out = outs[0] if len(outs) == 1 else _concat(outs)
        out = _like(out, x)
        return out[0] if single else out

    # -- checks -------------------------------------------------------------------------------
    def _check_main(self, x: Any) -> Tuple[Any, bool]:
        x = _as_array(x, "RGB image" if self.input_mode == "rgb" else "label map")
        shape, dt = tuple(x.shape), dtype_of(x)
        want = f"{self.height} x {self.width}"
        if self.input_mode == "rgb":
            if len(shape) not in (3, 4) or shape[-1] != 3:
                hint = " (drop the alpha channel: Image.convert('RGB'))" if shape[-1:] == (4,) else ""
                raise InputError(
                    f"RGB image must be H x W x 3 or B x H x W x 3 (uint8), got shape {list(shape)}{hint}"
                )
            if dt != np.uint8:
                raise InputError(
                    f"RGB image must be uint8 (0..255), got {dt.name}: the model "
                    f"normalises it as the authors' loader does"
                )
            spatial, single = shape[-3:-1], len(shape) == 3
        else:
            if len(shape) not in (2, 3):
                hint = (
                    " (drop the channel axis)"
                    if len(shape) == 4 and shape[1] == 1
                    else " (a colour image? this model takes class ids)"
                    if shape[-1:] in ((3,), (4,))
                    else ""
                )
                raise InputError(
                    f"label map must be H x W or B x H x W class ids, got shape {list(shape)}{hint}"
                )
            if dt.kind not in "iu":
                raise InputError(
                    f"label map must hold integer class ids (uint8 or int), got "
                    f"{dt.name}: load label PNGs as they are (mode L or P), not as "
                    f"normalised floats"
                )
            if len(shape) == 3 and shape[2] in (3, 4) and shape[:2] == (self.height, self.width):
                raise InputError(
                    f"label map has shape {list(shape)}: a colour image? this model "
                    f"takes class ids (H x W or B x H x W), not a rendering"
                )
            spatial, single = shape[-2:], len(shape) == 2
        if tuple(spatial) != (self.height, self.width):
            raise InputError(
                f"{'RGB image' if self.input_mode == 'rgb' else 'label map'} is "
                f"{spatial[0]} x {spatial[1]} (H x W) but this model runs at {want}: resize it "
                f"as the authors' loader does (python -m asap_deploy.translate --resize), or "
                f"export the model at that size"
            )
        if single:
            x = x[None]
        if self.input_mode == "labels" and self.check_inputs:
            rule = self._rules["label_map"]
            check_values("label map", x, ValueRule(ids_below=rule.ids_below))
        return x, single

    def _check_instance(self, inst: Any, x: Any, single: bool) -> Any:
        if inst is None:
            if self.needs_instance_map:
                raise InputError(
                    "this model uses instance edges: pass instance_map= (instance ids,"
                    " same H x W as the input, e.g. Cityscapes *_instanceIds.png; "
                    "translate --instance FILE_OR_DIR)"
                )
            return None
        if not self.needs_instance_map:
            raise InputError(
                "this model has no instance-edge channel (trained without instance maps): drop instance_map"
            )
        inst = _as_array(inst, "instance map")
        want = tuple(x.shape[1:3]) if self.input_mode == "rgb" else tuple(x.shape[1:])
        shape = tuple(inst.shape)
        if (
            len(shape) != (2 if single else 3)
            or shape[-2:] != want
            or (not single and shape[0] != x.shape[0])
        ):
            got = " x ".join(map(str, shape))
            exp = " x ".join(map(str, want if single else (x.shape[0],) + want))
            raise InputError(
                f"instance map is {got}, expected {exp} (one instance id per pixel of the input)"
            )
        if dtype_of(inst).kind not in "iu":
            raise InputError(f"instance map must hold integer instance ids, got {dtype_of(inst).name}")
        return inst[None] if single else inst

    # -- feeds --------------------------------------------------------------------------------
    def _feeds(self, x: Any, inst: Any) -> Dict[str, Any]:
        """The runner's graph inputs for a checked batch, built on the runner's device."""
        dev = getattr(self.runner, "dev", None)
        on_gpu = dev is not None and dev.type == "cuda"
        if on_gpu or is_torch(x):
            import torch

            target = dev if on_gpu else torch.device("cpu")
            x = _tensor(x).to(target, non_blocking=True)
            if inst is not None:
                inst = _tensor(inst).to(target, non_blocking=True)
        names = self._graph_inputs
        if "label" in names and self.input_mode == "labels":  # one-hot graph: encode here
            return {"label": self._one_hot(x, inst, on_gpu)}
        feeds = {}
        if "rgb" in names:
            feeds["rgb"] = x
        else:
            feeds["label_map"] = _int32(x)[:, None]
        if "instance_map" in names:
            feeds["instance_map"] = _int32(inst)[:, None]
        if not on_gpu:
            feeds = {k: (v.cpu().numpy() if is_torch(v) else v) for k, v in feeds.items()}
        return feeds

    def _one_hot(self, ids: Any, inst: Any, on_gpu: bool) -> Any:
        import torch

        from .model import LabelEncoder

        if self._encoder is None:
            self._encoder = LabelEncoder(self.config)
        # on a GPU the runner is a PyTorch one, which has its device
        dev = cast(Any, self.runner).dev if on_gpu else torch.device("cpu")
        enc = self._encoder.to(dev)
        ids = _tensor(ids).to(dev)
        inst = None if inst is None else _tensor(inst).to(dev)
        with torch.no_grad():
            label = enc(ids[:, None], None if inst is None else inst[:, None])
        return label if on_gpu else label.numpy()


# -- helpers -------------------------------------------------------------------------------------
def _as_array(x: Any, what: str) -> Any:
    if isinstance(x, np.ndarray) or is_torch(x):
        return x
    try:
        arr = np.asarray(x)  # PIL images, nested lists
    except Exception:
        arr = None
    if arr is None or arr.dtype == object or arr.ndim == 0:
        raise InputError(f"{what} must be a numpy array or torch tensor, got {type(x).__name__}")
    return arr


def _tensor(x: Any) -> Any:
    """A torch view of ``x`` (a copy only for read-only numpy arrays, e.g. from np.asarray(PIL))."""
    import torch

    if isinstance(x, np.ndarray) and not x.flags.writeable:
        x = x.copy()
    return torch.as_tensor(x)


def _int32(x: Any) -> Any:
    if is_torch(x):
        import torch

        return x.to(torch.int32)
    return np.ascontiguousarray(x, dtype=np.int32)


def _pad(x: Any, n: int) -> Any:
    reps = n - int(x.shape[0])
    if is_torch(x):
        import torch

        return torch.cat([x, x[-1:].expand(reps, *x.shape[1:])])
    return np.concatenate([x, np.repeat(x[-1:], reps, axis=0)])


def _concat(parts: List[Any]) -> Any:
    if is_torch(parts[0]):
        import torch

        return torch.cat(parts)
    return np.concatenate(parts)


def _like(out: Any, x: Any) -> Any:
    """numpy in -> numpy out; torch in -> torch out (on the input's device)."""
    if is_torch(x):
        import torch

        out = torch.as_tensor(out)
        return out if out.device == x.device else out.to(x.device)
    return out.cpu().numpy() if is_torch(out) else out


def _device(device: Optional[str]) -> Optional[str]:
    if device is None:
        return None
    if device != "cpu" and not (device == "cuda" or device.startswith("cuda:")):
        raise ConfigError(f"device must be cpu, cuda or cuda:N, got {device!r}")
    if device != "cpu":
        from .runners.registry import cuda_available

        if not cuda_available():
            raise ConfigError(f"device {device} asked for, but torch sees no CUDA GPU here")
    return device


def _open(path: Path) -> Tuple[ExportFolder, Optional[Path]]:
    """The export (every graph and indexed engine verified against its manifest: a damaged
    export is refused whichever backend would run) and the file asked for, if any."""
    if path.is_dir() or path.name == "manifest.json":
        return ExportFolder(path).verify(), None
    if not path.exists():
        raise ConfigError(
            f"{path} not found: pass an export folder (python -m asap_deploy.export"
            f" CHECKPOINT), or an engine or ONNX file inside one"
        )
    if path.suffix not in _ENGINE_SUFFIXES + (".onnx",):
        raise ConfigError(f"{path} is neither an export folder, an engine (.plan) nor an ONNX file")
    export = find_export(path)
    if export is None:
        raise ConfigError(
            f"{path.parent} has no manifest.json: the model's input format comes "
            f"from the export's manifest, so load a file inside an export folder"
        )
    return export.verify(), export.listed_file(path)


def _choose_runner(
    export: ExportFolder, file: Optional[Path], backend: str, device: Optional[str], precision: Optional[str]
) -> Tuple[Runner, List[str]]:
    from .runners.registry import cuda_available

    rules = value_rules(export.config)
    user_mode = "rgb" if export.config.no_one_hot else "labels"
    gpu = device != "cpu" and cuda_available()
    cuda = device if device and device != "cpu" else "cuda"
    if file is not None:
        if file.suffix == ".onnx":
            if backend not in ("auto", "onnxruntime"):
                raise ConfigError(
                    f"{file.name} is an ONNX file: use backend onnxruntime (or pass "
                    f"the export folder or an engine for {backend})"
                )
            return _activate(_ort(file, gpu, cuda, rules, _prec(file))), []
        if backend not in ("auto", "tensorrt", "tensorrt_rtx"):
            raise ConfigError(f"{file.name} is a TensorRT engine: use backend auto or tensorrt")
        return _activate(_trt(file, backend, cuda, rules)), []

    if backend == "torch":
        from .runners.torch_runner import TorchEagerRunner

        dev = device or ("cuda" if cuda_available() else "cpu")
        prec = precision or "fp32"
        return _activate(
            TorchEagerRunner(
                export.load_generator, prec, dev, user_mode, (export.height, export.width), rules
            )
        ), []
    if backend == "onnxruntime":
        return _activate(
            _ort(_ort_graph(export, gpu, precision), gpu, cuda, rules, precision, fallback=device is None)
        ), []
    notes: List[str] = []
    if backend in ("tensorrt", "tensorrt_rtx"):
        from .engine.trt_module import import_tensorrt

        import_tensorrt(backend)  # missing module first: an engine would not help without it
        engines = _engines(export, backend)
        if not engines:
            have = ", ".join(e["file"] for e in export.engines) or "none"
            graph = (
                "asapnet_plugin_fp16.onnx" if export.has_graph("asapnet_plugin", "fp16") else "asapnet.onnx"
            )
            raise ConfigError(
                f"{export.path} has no {backend} engine (engines: {have}): build one "
                f"with python -m asap_deploy.build {export.path / graph} --module "
                f"{backend}"
            )
        try:
            return _activate(_trt(export.engine_path(engines[0]), backend, cuda, rules)), []
        except RunnerUnavailable as exc:
            raise RunnerUnavailable(
                f"backend {backend}: {exc}; use backend onnxruntime (or auto) on this machine"
            ) from None

    # auto: the fastest thing that runs here
    if gpu:
        for e in _engines(export, "auto"):
            try:
                return _activate(_trt(export.engine_path(e), e["tensorrt_module"], cuda, rules)), notes
            except RunnerUnavailable as exc:
                notes.append(f"{e['file']}: {exc}")
        if not export.engines:
            notes.append("no TensorRT engine in the export (python -m asap_deploy.build)")
    return _activate(
        _ort(_ort_graph(export, gpu, precision), gpu, cuda, rules, precision, fallback=True)
    ), notes


def _activate(runner: Runner) -> Runner:
    runner.activate()
    return runner


def _engines(export: ExportFolder, module: str) -> List[Dict[str, Any]]:
    usable = [e for e in export.engines if module == "auto" or e["tensorrt_module"] == module]
    return sorted(usable, key=lambda e: (_GRAPH_ORDER.get((e["graph"], e["precision"]), 9), e["file"]))


def _prec(path: Path) -> str:
    return "fp16" if path.stem.endswith("_fp16") else "fp32"


def _ort_graph(export: ExportFolder, gpu: bool, precision: Optional[str]) -> Path:
    """FP16 on a GPU (where it is fast), FP32 on a CPU (where FP16 is emulated)."""
    from .runners.registry import ort_providers

    cuda_ep = gpu and "CUDAExecutionProvider" in ort_providers()
    prec = precision or ("fp16" if cuda_ep and export.has_graph("asapnet", "fp16") else "fp32")
    return export.graph_path("asapnet", prec)


def _ort(
    path: Path,
    gpu: bool,
    cuda: str,
    rules: Dict[str, ValueRule],
    precision: Optional[str],
    fallback: bool = False,
) -> Runner:
    from .runners.loaders import SessionFromOnnx
    from .runners.ort_runner import OrtRunner
    from .runners.registry import ort_providers

    use_cuda = gpu and "CUDAExecutionProvider" in ort_providers()
    if gpu and not use_cuda and not fallback:
        raise ConfigError(
            "onnxruntime here has no CUDAExecutionProvider: install onnxruntime-gpu, or pass device='cpu'"
        )
    device_id = int(cuda.split(":")[1]) if ":" in cuda else 0
    source = SessionFromOnnx(path, "cuda" if use_cuda else "cpu", device_id)
    return OrtRunner(source, precision or _prec(path), value_rules=rules)


def _trt(plan: Path, module: str, cuda: str, rules: Dict[str, ValueRule]) -> Runner:
    from .runners.loaders import EngineFromPath
    from .runners.trt_runner import TrtRunner

    module = "auto" if module in ("auto", None) else module
    return TrtRunner(EngineFromPath(plan, module), module=module, device=cuda, value_rules=rules)
