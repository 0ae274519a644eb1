"""ctypes binding of the fused MLP library (engines/kernels/spatial_mlp_api.h).

``FusedMLP`` runs the kernel on torch tensors: CUDA tensors with the CUDA library
(libasap_spatial_mlp.so), or CPU tensors with the emulation build of the same source
(libasap_spatial_mlp_emu.so, ``python -m asap_deploy.build_plugin --emulate``). ``forward_cpu``
runs the CPU reference build (libasap_spatial_mlp_cpu.so) on numpy arrays. All three share one
shape check, ``asap_spatial_mlp_validate``, whose messages name the offending tensors.

The parameter grid may be NCHW (what the ONNX graph computes) or channels-last (a cell's
parameters contiguous: what the kernels stage fastest, and what a channels-last convolution
writes); the layout is read from the tensor's strides, so neither needs a copy.
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any, Optional, Sequence, Tuple

import numpy as np

from .errors import AsapDeployError, MissingDependencyError
from .locations import engines_dir
from .mlp_spec import MLPSpec

SHAPE_FIELDS = (
    "in_channels",
    "hidden_width",
    "depth",
    "out_channels",
    "downsampling",
    "num_frequencies",
    "label_nc",
    "input_mode",
)
INPUT_MODES = {"one_hot": 0, "label_ids": 1}
FLOAT32, FLOAT16, INT32 = 0, 1, 2
DTYPE_CODES = {"float32": FLOAT32, "float16": FLOAT16, "int32": INT32}
NCHW, NHWC = 0, 1
#: asap_spatial_mlp_path's answers
KERNEL_PATHS = ("tensor_cores", "generic_shared", "generic_global")
DEFAULT_DIR = engines_dir()  # where python -m asap_deploy.build_plugin writes by default
KERNEL_LIBRARY = "libasap_spatial_mlp.so"
EMULATION_LIBRARY = "libasap_spatial_mlp_emu.so"
CPU_LIBRARY = "libasap_spatial_mlp_cpu.so"


class AsapMLPShape(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int32) for name in SHAPE_FIELDS]


class AsapMLPTensors(ctypes.Structure):
    _fields_ = [
        ("input_dims", ctypes.c_int64 * 4),
        ("params_dims", ctypes.c_int64 * 4),
        ("input_dtype", ctypes.c_int32),
        ("params_dtype", ctypes.c_int32),
        ("params_layout", ctypes.c_int32),
        ("params_pitch", ctypes.c_int32),
    ]


class KernelError(AsapDeployError):
    pass


def make_shape(spec: MLPSpec, label_nc: int = 0, input_mode: str = "one_hot") -> AsapMLPShape:
    attrs = spec.plugin_attributes()
    return AsapMLPShape(*(attrs[f] for f in SHAPE_FIELDS[:6]), label_nc, INPUT_MODES[input_mode])


def make_tensors(
    input_dims: Sequence[int],
    params_dims: Sequence[int],
    input_dtype: str,
    params_dtype: str,
    layout: int = NCHW,
    pitch: int = 0,
) -> AsapMLPTensors:
    """Describe one call; -1 marks a dimension not known yet (a TensorRT build)."""
    return AsapMLPTensors(
        (ctypes.c_int64 * 4)(*input_dims),
        (ctypes.c_int64 * 4)(*params_dims),
        DTYPE_CODES[input_dtype],
        DTYPE_CODES[params_dtype],
        layout,
        pitch,
    )


def params_layout(shape: Sequence[int], strides: Sequence[int]) -> Optional[Tuple[int, int]]:
    """(layout, pitch) of a (B, NP, GH, GW) grid from its element strides, or None when the kernels
    cannot read it as is (then make it contiguous). Channels-last may pad each cell (pitch > NP)."""
    b, c, h, w = shape
    if tuple(strides) == (c * h * w, h * w, w, 1):
        return NCHW, 0
    pitch = strides[3]
    if strides[1] == 1 and pitch >= c and strides[2] == w * pitch and (b == 1 or strides[0] == h * w * pitch):
        return NHWC, pitch
    return None


def _declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    S, T = ctypes.POINTER(AsapMLPShape), ctypes.POINTER(AsapMLPTensors)
    vp, i = ctypes.c_void_p, ctypes.c_int
    lib.asap_status_string.restype = ctypes.c_char_p
    lib.asap_status_string.argtypes = [i]
    lib.asap_last_error.restype = ctypes.c_char_p
    lib.asap_last_error.argtypes = []
    lib.asap_spatial_mlp_validate.argtypes = [S, T]
    if hasattr(lib, "asap_spatial_mlp_forward"):
        lib.asap_spatial_mlp_forward.argtypes = [S, T, vp, vp, vp, vp]
        lib.asap_spatial_mlp_uses_tensor_cores.argtypes = [S, i]
        lib.asap_spatial_mlp_path.argtypes = [S, T]
    if hasattr(lib, "asap_spatial_mlp_forward_cpu"):
        lib.asap_spatial_mlp_forward_cpu.argtypes = [S, T, vp, vp, vp]
        for name in ("asap_mlp_bias_offset", "asap_mlp_weight_offset"):
            getattr(lib, name).argtypes = [S, i]
        lib.asap_mlp_num_params.argtypes = [S]
        lib.asap_tensor_core_smem_bytes.argtypes = [S]
        lib.asap_mlp_pe_value.argtypes = [S, i, i, i]
        lib.asap_mlp_pe_value.restype = ctypes.c_float
    if hasattr(lib, "asap_emu_trace_end"):
        lib.asap_emu_trace_register.argtypes = [vp, ctypes.c_size_t, ctypes.c_char_p]
        lib.asap_emu_trace_end.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
        lib.asap_emu_trace_end.restype = ctypes.c_long
    return lib


def load_library(path: Path) -> ctypes.CDLL:
    path = Path(path)
    if not path.is_file():
        flag = " --emulate" if path.name.startswith("libasap_spatial_mlp_emu") else ""
        raise MissingDependencyError(
            f"{path} not found: build it with `python -m asap_deploy.build_plugin{flag} --out {path.parent}`"
        )
    try:
        return _declare(ctypes.CDLL(str(path.resolve())))
    except OSError as exc:
        raise MissingDependencyError(
            f"cannot load {path}: {exc} (is the CUDA runtime on "
            f"LD_LIBRARY_PATH, and was it built for this machine?)"
        ) from None
    except AttributeError as exc:
        raise MissingDependencyError(
            f"{path} is not an asap_deploy kernel library of this version "
            f"({exc}); rebuild it with `python -m asap_deploy.build_plugin`"
        ) from None


def is_emulated(lib: ctypes.CDLL) -> bool:
    """True for the CPU emulation build: it takes host pointers and a NULL stream."""
    return hasattr(lib, "asap_emu_smem_optin")


def check(lib: ctypes.CDLL, status: int, what: str) -> None:
    if status != 0:
        detail = lib.asap_last_error().decode() or lib.asap_status_string(status).decode()
        raise KernelError(f"{what}: {detail}")


def validate(
    lib: ctypes.CDLL, shape: AsapMLPShape, tensors: AsapMLPTensors, what: str = "ASAP_SpatialMLP"
) -> None:
    """The library's shape check (the same one the plugins and the kernels run)."""
    check(lib, lib.asap_spatial_mlp_validate(ctypes.byref(shape), ctypes.byref(tensors)), what)


def _numpy_params(params: np.ndarray) -> Tuple[np.ndarray, int, int]:
    item = params.itemsize
    found = params_layout(params.shape, [s // item for s in params.strides])
    if found is None:
        params = np.ascontiguousarray(params)
        found = (NCHW, 0)
    return params, found[0], found[1]


def forward_cpu(lib: ctypes.CDLL, shape: AsapMLPShape, x: np.ndarray, params: np.ndarray) -> np.ndarray:
    """The CPU reference: x (B, C, H, W) float32 or (B, 1, H, W) int32 ids; params float32 (B, NP,
    GH, GW), NCHW or a channels-last view."""
    x = np.ascontiguousarray(x)
    params, layout, pitch = _numpy_params(np.asarray(params, dtype=np.float32))
    b, _, h, w = x.shape
    out = np.empty((b, shape.out_channels, h, w), dtype=np.float32)
    t = make_tensors(
        x.shape, params.shape, "int32" if x.dtype == np.int32 else str(x.dtype), "float32", layout, pitch
    )
    check(
        lib,
        lib.asap_spatial_mlp_forward_cpu(
            ctypes.byref(shape), ctypes.byref(t), x.ctypes.data, params.ctypes.data, out.ctypes.data
        ),
        "CPU reference",
    )
    return out


class FusedMLP:
    """The fused kernel on torch tensors: ``FusedMLP(spec, ...)(x, params) -> image``.

    With the CUDA library the tensors must be on the GPU (the kernel runs on the current stream,
    asynchronously); with the emulation library they must be on the CPU (it runs synchronously).
    """

    def __init__(
        self, spec: MLPSpec, label_nc: int = 0, input_mode: str = "one_hot", library: Optional[Path] = None
    ) -> None:
        self.spec = spec
        self.shape = make_shape(spec, label_nc, input_mode)
        self.input_mode = input_mode
        self.lib = load_library(library or DEFAULT_DIR / KERNEL_LIBRARY)
        self.emulated = is_emulated(self.lib)

    def uses_tensor_cores(self, dtype: Any) -> bool:
        import torch

        code = FLOAT16 if dtype == torch.float16 else FLOAT32
        return bool(self.lib.asap_spatial_mlp_uses_tensor_cores(ctypes.byref(self.shape), code))

    def path(self, x: Any, params: Any) -> str:
        """Which kernel a call with these tensors runs on this device (see KERNEL_PATHS)."""
        t, _ = self.tensors(x, params)
        code = self.lib.asap_spatial_mlp_path(ctypes.byref(self.shape), ctypes.byref(t))
        if code < 0:
            check(self.lib, -code, "fused MLP")
        return KERNEL_PATHS[code]

    def tensors(self, x: Any, params: Any) -> Tuple[AsapMLPTensors, Any]:
        """The call's description, and params as the kernels will read them."""
        import torch

        if params.dtype not in (torch.float32, torch.float16):
            raise KernelError(f"params must be float32 or float16, got {params.dtype}")
        found = params_layout(tuple(params.shape), params.stride()) if params.dim() == 4 else None
        if found is None:
            params = params.contiguous()
            found = params_layout(tuple(params.shape), params.stride()) if params.dim() == 4 else (NCHW, 0)
        names = {torch.float32: "float32", torch.float16: "float16", torch.int32: "int32"}
        if x.dtype not in names:
            raise KernelError(f"input must be float32, float16 or int32 class ids, got {x.dtype}")
        if x.dim() != 4 or params.dim() != 4:
            raise KernelError(
                f"input and params must be 4-D (B, C, H, W), got {tuple(x.shape)} and {tuple(params.shape)}"
            )
        t = make_tensors(
            tuple(x.shape), tuple(params.shape), names[x.dtype], names[params.dtype], found[0], found[1]
        )
        return t, params

    def __call__(self, x: Any, params: Any, out: Any = None) -> Any:
        import torch

        on_gpu = x.is_cuda and params.is_cuda
        if self.emulated and (x.is_cuda or params.is_cuda):
            raise KernelError("the emulation library runs on the CPU: pass CPU tensors")
        if not self.emulated and not on_gpu:
            raise KernelError(
                "the CUDA kernel library needs CUDA tensors (for CPU tensors use the "
                "emulation build: python -m asap_deploy.build_plugin --emulate)"
            )
        x = x.contiguous()
        t, params = self.tensors(x, params)
        validate(self.lib, self.shape, t, "fused MLP")
        b, _, h, w = x.shape
        if out is None:
            out = torch.empty((b, self.spec.out_channels, h, w), dtype=params.dtype, device=x.device)
        elif (
            tuple(out.shape) != (b, self.spec.out_channels, h, w)
            or out.dtype != params.dtype
            or not out.is_contiguous()
        ):
            raise KernelError(
                f"out must be a contiguous {(b, self.spec.out_channels, h, w)} "
                f"{params.dtype} tensor, got {tuple(out.shape)} {out.dtype}"
            )
        stream = None if self.emulated else torch.cuda.current_stream(x.device).cuda_stream
        check(
            self.lib,
            self.lib.asap_spatial_mlp_forward(
                ctypes.byref(self.shape),
                ctypes.byref(t),
                x.data_ptr(),
                params.data_ptr(),
                out.data_ptr(),
                stream,
            ),
            "fused MLP",
        )
        return out
