"""Build the CUDA-on-CPU emulation of the fused kernel (engines/emulation/README.md).

The unmodified ``engines/kernels/spatial_mlp_kernel.cu`` is compiled by the host compiler with
the emulator's CUDA headers force-included, so CI runs the exact kernel source without a GPU:

* ``libasap_spatial_mlp_emu.so``: the C API of ``spatial_mlp_api.h`` on host pointers (NULL
  stream), used like the CUDA library by ``asap_deploy.fused_mlp`` and the tests;
* ``libasap_spatial_mlp_emu_trace.so``: the same with every load and store of the kernel source
  recorded, for the access report (``python -m asap_deploy.kernel_report``);
* ``asap_emu_cases_asan`` / ``asap_emu_cases_tsan``: a case runner (engines/emulation/
  case_runner.cpp) with the kernel under AddressSanitizer + UndefinedBehaviorSanitizer or
  ThreadSanitizer; sanitizer runtimes do not load into Python, hence an executable.

Kernels' ``__launch_bounds__`` are read from the source here and registered with the emulator,
which refuses launches that exceed them, as the hardware does.
"""
from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .native_build import KERNELS, ENGINES, atomic_output, find_cxx, run

EMULATION = ENGINES / "emulation"
KERNEL_SOURCE = KERNELS / "spatial_mlp_kernel.cu"
RUNTIME_SOURCES = ("runtime.cpp", "trace.cpp")
HOST_SOURCES = (KERNELS / "spatial_mlp_validate.cpp",)

#: flavour -> (output name, kernel flags, runtime flags, link flags)
FLAVOURS: Dict[str, Tuple[str, List[str], List[str], List[str]]] = {
    "plain": ("libasap_spatial_mlp_emu.so", ["-O2"], ["-O2"], []),
    "trace": ("libasap_spatial_mlp_emu_trace.so",
              ["-O1", "-fsanitize=kernel-address", "--param", "asan-instrumentation-with-call-threshold=0",
               "--param", "asan-stack=0", "--param", "asan-globals=0", "-DASAP_EMU_TRACE"],
              ["-O2", "-DASAP_EMU_TRACE"], []),
    "address": ("asap_emu_cases_asan",
                ["-O1", "-fsanitize=address,undefined", "-fno-omit-frame-pointer",
                 "-fno-sanitize-recover=undefined"],
                ["-O1", "-fsanitize=address,undefined", "-fno-omit-frame-pointer",
                 "-fno-sanitize-recover=undefined"],
                ["-fsanitize=address,undefined"]),
    "thread": ("asap_emu_cases_tsan", ["-O1", "-fsanitize=thread"], ["-O1", "-fsanitize=thread"],
               ["-fsanitize=thread"]),
}
EMULATION_LIBRARY = FLAVOURS["plain"][0]
TRACE_LIBRARY = FLAVOURS["trace"][0]


def launch_bounds(source: str) -> List[Tuple[str, str]]:
    """(kernel name, bound expression) for every ``__launch_bounds__(EXPR) name(``."""
    found = re.findall(r"__launch_bounds__\s*\(\s*([^,)]+)[^)]*\)\s*(\w+)\s*\(", source)
    return [(name, expr.strip()) for expr, name in found]


def shared_symbols(source: str) -> List[str]:
    """Names of the file-scope ``extern __shared__`` arrays (bound to the emulator's buffer)."""
    return re.findall(r"extern\s+__shared__[^;\[]*?(\w+)\s*\[\s*\]\s*;", source)


def kernel_unit(kernel: Path) -> str:
    """A translation unit: the kernel source, then the registration of its launch bounds."""
    source = kernel.read_text()
    bounds = launch_bounds(source)
    if not bounds:
        raise ValueError(f"{kernel}: no __launch_bounds__ found")
    regs = "\n".join(f'        emu::register_launch_bounds("{name}", static_cast<int>({expr}));'
                     for name, expr in bounds)
    return (f'#include "{kernel}"\n\n'
            "namespace {\n"
            "struct AsapEmuLaunchBounds {\n"
            "    AsapEmuLaunchBounds() {\n"
            "        using namespace asap;\n"
            f"{regs}\n"
            "    }\n"
            "} const asap_emu_launch_bounds;\n"
            "}  // namespace\n")


def build_emulation(out_dir: Path, flavour: str = "plain", kernel: Path = KERNEL_SOURCE,
                    output: Optional[Path] = None) -> Path:
    """Compile the emulation of ``kernel`` (default: the shipped kernel source) in one flavour.

    ``kernel`` exists so tests can build deliberately broken copies and show that the emulator
    catches them."""
    name, kernel_flags, runtime_flags, link_flags = FLAVOURS[flavour]
    cxx = find_cxx()
    kernel = Path(kernel).resolve()
    executable = not name.endswith(".so")
    common = [cxx, "-std=c++20", "-g", "-fPIC", "-pthread", "-Wall", "-Wno-unknown-pragmas",
              f"-I{EMULATION / 'include'}", f"-I{EMULATION}", f"-I{KERNELS}"]
    out = Path(output) if output else Path(out_dir) / name
    with tempfile.TemporaryDirectory(prefix="asap-emu-") as tmp:
        t = Path(tmp)
        unit = t / "kernel_unit.cpp"
        unit.write_text(kernel_unit(kernel))
        objects = [t / "kernel.o"]
        run(common + kernel_flags + ["-include", "emu/core.h", "-c", str(unit), "-o", str(objects[0])],
            "the emulated kernel")
        runtime = [EMULATION / s for s in RUNTIME_SOURCES] + list(HOST_SOURCES)
        if flavour == "trace":
            runtime.append(EMULATION / "hooks.cpp")
        if executable:
            runtime += [EMULATION / "case_runner.cpp", KERNELS / "spatial_mlp_cpu.cpp"]
        for src in runtime:
            obj = t / f"{src.stem}.o"
            run(common + runtime_flags + ["-c", str(src), "-o", str(obj)], f"the emulator ({src.name})")
            objects.append(obj)
        defsyms = [f"-Wl,--defsym,{sym}=emu_dynamic_smem" for sym in shared_symbols(kernel.read_text())]
        shape = [] if executable else ["-shared", "-Wl,-Bsymbolic"]
        return atomic_output(out, lambda tmp_out: run(
            [cxx, *shape, *link_flags, "-pthread", *map(str, objects), *defsyms, "-o", tmp_out, "-ldl"],
            "the emulation build"))
