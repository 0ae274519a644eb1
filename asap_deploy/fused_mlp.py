"""ctypes binding of the fused MLP library (engines/kernels/spatial_mlp_api.h).

``FusedMLP`` runs the CUDA kernel on torch tensors (the GPU tests, the PyTorch+kernel backend and
the Python TensorRT plugin go through it); ``forward_cpu`` runs the CPU reference build of the
same header on numpy arrays (CI checks it against the PyTorch model).
"""
from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Optional

import numpy as np

from .errors import AsapDeployError, MissingDependencyError
from .locations import engines_dir
from .mlp_spec import MLPSpec

SHAPE_FIELDS = ("in_channels", "hidden_width", "depth", "out_channels", "downsampling",
                "num_frequencies", "label_nc", "input_mode")
INPUT_MODES = {"one_hot": 0, "label_ids": 1}
FLOAT32, FLOAT16 = 0, 1
DEFAULT_DIR = engines_dir()  # where python -m asap_deploy.build_plugin writes by default
KERNEL_LIBRARY = "libasap_spatial_mlp.so"


class AsapMLPShape(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int32) for name in SHAPE_FIELDS]


class KernelError(AsapDeployError):
    pass


def make_shape(spec: MLPSpec, label_nc: int = 0, input_mode: str = "one_hot") -> AsapMLPShape:
    attrs = spec.plugin_attributes()
    return AsapMLPShape(*(attrs[f] for f in SHAPE_FIELDS[:6]), label_nc, INPUT_MODES[input_mode])


def _declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    P = ctypes.POINTER(AsapMLPShape)
    vp, i = ctypes.c_void_p, ctypes.c_int
    lib.asap_status_string.restype = ctypes.c_char_p
    lib.asap_status_string.argtypes = [i]
    if hasattr(lib, "asap_spatial_mlp_forward"):
        lib.asap_spatial_mlp_forward.argtypes = [P, i, vp, i, vp, vp, i, i, i, vp]
        lib.asap_spatial_mlp_uses_tensor_cores.argtypes = [P, i]
    if hasattr(lib, "asap_spatial_mlp_forward_cpu"):
        lib.asap_spatial_mlp_forward_cpu.argtypes = [P, vp, i, vp, vp, i, i, i]
        for name in ("asap_mlp_bias_offset", "asap_mlp_weight_offset"):
            getattr(lib, name).argtypes = [P, i]
        lib.asap_mlp_num_params.argtypes = [P]
        lib.asap_tensor_core_smem_bytes.argtypes = [P]
        lib.asap_mlp_pe_value.argtypes = [P, i, i, i]
        lib.asap_mlp_pe_value.restype = ctypes.c_float
    return lib


def load_library(path: Path) -> ctypes.CDLL:
    path = Path(path)
    if not path.is_file():
        raise MissingDependencyError(f"{path} not found: build it with "
                                     f"`python -m asap_deploy.build_plugin --out {path.parent}`")
    try:
        return _declare(ctypes.CDLL(str(path.resolve())))
    except OSError as exc:
        raise MissingDependencyError(f"cannot load {path}: {exc} (is the CUDA runtime on "
                                     f"LD_LIBRARY_PATH, and was it built for this machine?)") from None


def check(lib: ctypes.CDLL, status: int, what: str) -> None:
    if status != 0:
        raise KernelError(f"{what}: {lib.asap_status_string(status).decode()}")


def forward_cpu(lib: ctypes.CDLL, shape: AsapMLPShape, x: np.ndarray, params: np.ndarray) -> np.ndarray:
    """The CPU reference: x (B, C, H, W) float32 or (B, 1, H, W) int32 ids; params float32."""
    x = np.ascontiguousarray(x)
    params = np.ascontiguousarray(params, dtype=np.float32)
    b, c, h, w = x.shape
    out = np.empty((b, shape.out_channels, h, w), dtype=np.float32)
    check(lib, lib.asap_spatial_mlp_forward_cpu(ctypes.byref(shape), x.ctypes.data, c,
                                                params.ctypes.data, out.ctypes.data, b, h, w),
          "CPU reference")
    return out


class FusedMLP:
    """The CUDA kernel on torch tensors: ``FusedMLP(spec, ...)(x, params) -> image``."""

    def __init__(self, spec: MLPSpec, label_nc: int = 0, input_mode: str = "one_hot",
                 library: Optional[Path] = None) -> None:
        self.spec = spec
        self.shape = make_shape(spec, label_nc, input_mode)
        self.input_mode = input_mode
        self.lib = load_library(library or DEFAULT_DIR / KERNEL_LIBRARY)

    def uses_tensor_cores(self, dtype) -> bool:
        import torch

        code = FLOAT16 if dtype == torch.float16 else FLOAT32
        return bool(self.lib.asap_spatial_mlp_uses_tensor_cores(ctypes.byref(self.shape), code))

    def __call__(self, x, params, out=None):
        import torch

        if not (x.is_cuda and params.is_cuda):
            raise KernelError("FusedMLP needs CUDA tensors")
        if params.dtype not in (torch.float32, torch.float16):
            raise KernelError(f"params must be float32 or float16, got {params.dtype}")
        want = torch.int32 if self.input_mode == "label_ids" else params.dtype
        if x.dtype != want:
            raise KernelError(f"input must be {want} in {self.input_mode} mode, got {x.dtype}")
        x, params = x.contiguous(), params.contiguous()
        b, c, h, w = x.shape
        s = self.spec.downsampling
        if tuple(params.shape) != (b, self.spec.num_params, h // s, w // s):
            raise KernelError(f"params must be {(b, self.spec.num_params, h // s, w // s)} for "
                              f"input {tuple(x.shape)}, got {tuple(params.shape)}")
        if out is None:
            out = torch.empty((b, self.spec.out_channels, h, w), dtype=params.dtype, device=x.device)
        code = FLOAT16 if params.dtype == torch.float16 else FLOAT32
        stream = torch.cuda.current_stream(x.device).cuda_stream
        check(self.lib, self.lib.asap_spatial_mlp_forward(
            ctypes.byref(self.shape), code, x.data_ptr(), c, params.data_ptr(), out.data_ptr(),
            b, h, w, stream), "fused MLP")
        return out
