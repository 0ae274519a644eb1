"""Build the CUDA-on-CPU emulation of the fused kernel (engines/emulation/README.md).

The unmodified ``engines/kernels/spatial_mlp_kernel.cu`` is compiled by the host compiler with
the emulator's CUDA headers force-included, so CI runs the exact kernel source without a GPU:

* ``libasap_spatial_mlp_emu.so``: the C API of ``spatial_mlp_api.h`` on host pointers (NULL
  stream), used like the CUDA library by ``asap_deploy.fused_mlp`` and the tests;
* ``libasap_spatial_mlp_emu_trace.so``: the same with every load and store of the kernel source
  recorded, for the access report (``python -m asap_deploy.kernel_report``);
* ``asap_emu_cases`` / ``asap_emu_cases_asan`` / ``asap_emu_cases_tsan``: a case runner (engines/emulation/
  case_runner.cpp) with the kernel under AddressSanitizer + UndefinedBehaviorSanitizer or
  ThreadSanitizer; sanitizer runtimes do not load into Python, hence an executable.

Kernels' ``__launch_bounds__`` are read from the source here and registered with the emulator,
which refuses launches that exceed them, as the hardware does.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .native_build import ENGINES, KERNELS, atomic_output, find_cxx, run

EMULATION = ENGINES / "emulation"
KERNEL_SOURCE = KERNELS / "spatial_mlp_kernel.cu"
RUNTIME_SOURCES = ("runtime.cpp", "trace.cpp")
HOST_SOURCES = (KERNELS / "spatial_mlp_validate.cpp",)

#: flavour -> (output name, kernel flags, runtime flags, link flags)
FLAVOURS: Dict[str, Tuple[str, List[str], List[str], List[str]]] = {
    "plain": ("libasap_spatial_mlp_emu.so", ["-O2"], ["-O2"], []),
    "trace": (
        "libasap_spatial_mlp_emu_trace.so",
        [
            "-O2",
            "-fsanitize=kernel-address",
            "--param",
            "asan-instrumentation-with-call-threshold=0",
            "--param",
            "asan-stack=0",
            "--param",
            "asan-globals=0",
            "-DASAP_EMU_TRACE",
        ],
        ["-O2", "-DASAP_EMU_TRACE"],
        [],
    ),
    "cases": ("asap_emu_cases", ["-O1"], ["-O1"], []),
    "address": (
        "asap_emu_cases_asan",
        ["-O1", "-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"],
        ["-O1", "-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"],
        ["-fsanitize=address,undefined"],
    ),
    "thread": (
        "asap_emu_cases_tsan",
        ["-O1", "-fsanitize=thread"],
        ["-O1", "-fsanitize=thread"],
        ["-fsanitize=thread"],
    ),
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
    regs = "\n".join(
        f'        emu::register_launch_bounds("{name}", static_cast<int>({expr}));' for name, expr in bounds
    )
    return (
        f'#include "{kernel}"\n\n'
        "namespace {\n"
        "struct AsapEmuLaunchBounds {\n"
        "    AsapEmuLaunchBounds() {\n"
        "        using namespace asap;\n"
        f"{regs}\n"
        "    }\n"
        "} const asap_emu_launch_bounds;\n"
        "}  // namespace\n"
    )


def _compile(cmd: List[str], src: Path, obj: Path, cache: Optional[Path]) -> Path:
    """Compile ``src`` to ``obj``; with a cache folder, reuse an object compiled from the same
    source text with the same command (the runtime is the same for every kernel mutant)."""
    if cache is None:
        run(cmd + ["-c", str(src), "-o", str(obj)], f"the emulation ({src.name})")
        return obj
    key = hashlib.sha256((" ".join(cmd) + "\0" + src.read_text()).encode()).hexdigest()[:20]
    cached = cache / f"{src.stem}-{key}.o"
    if not cached.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = cache / f".{cached.name}.{obj.parent.name}"
        run(cmd + ["-c", str(src), "-o", str(tmp)], f"the emulation ({src.name})")
        tmp.replace(cached)
    shutil.copyfile(cached, obj)
    return obj


def build_emulation(
    out_dir: Path,
    flavour: str = "plain",
    kernel: Path = KERNEL_SOURCE,
    output: Optional[Path] = None,
    cache: Optional[Path] = None,
) -> Path:
    """Compile the emulation of ``kernel`` (default: the shipped kernel source) in one flavour.

    ``kernel`` exists so tests can build deliberately broken copies and show that the emulator
    catches them; ``cache`` (a folder) keeps the runtime's objects between such builds."""
    name, kernel_flags, runtime_flags, link_flags = FLAVOURS[flavour]
    cxx = find_cxx()
    kernel = Path(kernel).resolve()
    executable = not name.endswith(".so")
    common = [
        cxx,
        "-std=c++20",
        "-g",
        "-fPIC",
        "-pthread",
        "-Wall",
        "-Wno-unknown-pragmas",
        f"-I{EMULATION / 'include'}",
        f"-I{EMULATION}",
        f"-I{KERNELS}",
    ]
    out = Path(output) if output else Path(out_dir) / name
    with tempfile.TemporaryDirectory(prefix="asap-emu-") as tmp:
        t = Path(tmp)
        unit = t / "kernel_unit.cpp"
        unit.write_text(kernel_unit(kernel))
        jobs = [(common + kernel_flags + ["-include", "emu/core.h"], unit, t / "kernel.o", None)]
        runtime = [EMULATION / s for s in RUNTIME_SOURCES] + list(HOST_SOURCES)
        if flavour == "trace":
            runtime.append(EMULATION / "hooks.cpp")
        if executable:
            runtime += [EMULATION / "case_runner.cpp", KERNELS / "spatial_mlp_cpu.cpp"]
        jobs += [(common + runtime_flags, src, t / f"{src.stem}.o", cache) for src in runtime]
        with ThreadPoolExecutor(max_workers=4) as pool:  # compilers are separate processes
            objects = list(pool.map(lambda j: _compile(*j), jobs))
        defsyms = [f"-Wl,--defsym,{sym}=emu_dynamic_smem" for sym in shared_symbols(kernel.read_text())]
        shape = [] if executable else ["-shared", "-Wl,-Bsymbolic"]
        return atomic_output(
            out,
            lambda tmp_out: run(
                [cxx, *shape, *link_flags, "-pthread", *map(str, objects), *defsyms, "-o", tmp_out, "-ldl"],
                "the emulation build",
            ),
        )
