"""Which CUDA GPU this process would run on, asked of the NVIDIA driver (libcuda) directly.

Neither torch nor the CUDA runtime is involved: a CPU-only torch build on a GPU machine would say
"no GPU", and the runtime's answer on a machine without a driver ("driver version is
insufficient") names the wrong cause. ``CUDA_VISIBLE_DEVICES`` applies as usual.
"""

from __future__ import annotations

import ctypes
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

_DRIVER = "nvcuda.dll" if sys.platform == "win32" else "libcuda.so.1"
_CC_MAJOR, _CC_MINOR = 75, 76  # CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR / _MINOR


@dataclass
class CudaDevices:
    devices: List[Dict[str, Any]] = field(default_factory=list)
    driver_version: Optional[str] = None
    problem: Optional[str] = None  # why there is no usable device, in words

    @property
    def first(self) -> Optional[Dict[str, Any]]:
        return self.devices[0] if self.devices else None


def _error_name(lib: Any, code: int) -> str:
    name = ctypes.c_char_p()
    try:
        if lib.cuGetErrorName(code, ctypes.byref(name)) == 0 and name.value:
            return name.value.decode()
    except AttributeError:
        pass
    return f"CUresult {code}"


def probe() -> CudaDevices:
    """The visible CUDA devices (name, compute capability), or the reason there are none."""
    try:
        lib = ctypes.CDLL(_DRIVER)
    except OSError:
        return CudaDevices(problem=f"no NVIDIA driver: {_DRIVER} not found")
    try:
        rc = lib.cuInit(0)
        if rc != 0:
            name = _error_name(lib, rc)
            if name == "CUDA_ERROR_NO_DEVICE":
                return CudaDevices(
                    problem="no CUDA device is visible: CUDA_ERROR_NO_DEVICE, check CUDA_VISIBLE_DEVICES"
                )
            return CudaDevices(problem=f"the NVIDIA driver did not initialise: {name}")
        version = ctypes.c_int()
        lib.cuDriverGetVersion(ctypes.byref(version))
        driver = f"{version.value // 1000}.{version.value % 1000 // 10}"
        count = ctypes.c_int()
        rc = lib.cuDeviceGetCount(ctypes.byref(count))
        if rc != 0 or count.value == 0:
            return CudaDevices(
                driver_version=driver, problem="no CUDA device is visible, check CUDA_VISIBLE_DEVICES"
            )
        devices = []
        for i in range(count.value):
            dev = ctypes.c_int()
            lib.cuDeviceGet(ctypes.byref(dev), i)
            buf = ctypes.create_string_buffer(256)
            lib.cuDeviceGetName(buf, 256, dev)
            major, minor = ctypes.c_int(), ctypes.c_int()
            lib.cuDeviceGetAttribute(ctypes.byref(major), _CC_MAJOR, dev)
            lib.cuDeviceGetAttribute(ctypes.byref(minor), _CC_MINOR, dev)
            devices.append(
                {
                    "name": buf.value.decode(errors="replace"),
                    "compute_capability": f"{major.value}.{minor.value}",
                }
            )
        return CudaDevices(devices, driver)
    except AttributeError as exc:  # a driver library without the expected entry points
        return CudaDevices(problem=f"the NVIDIA driver library is unusable: {exc}")


def gpu_identity() -> Optional[Dict[str, Any]]:
    """Name and compute capability of GPU 0, or None on a machine without one."""
    return probe().first
