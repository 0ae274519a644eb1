"""Pixelwise-MLP stage benchmark: the fused kernel against PyTorch's FP16 tile-matmul path.

    python benchmarks/fused_mlp_stage.py --height 1024 --width 2048 --out DIR

Times the stage alone (parameters precomputed), in one run on one GPU, with CUDA events: the
median over --iterations runs after --warmup, for
* the fused kernel with the parameter grid channels-last (kHWC8 padding: what TensorRT's
  convolution or FusedGenerator writes) and NCHW (what the ONNX graph computes);
* asap_deploy's PixelwiseMLP in FP16 (the authors' algorithm: tiles + batched MatMul);
* a dense 8192^3 FP16 matrix product, the tensor-core rate this GPU achieves in practice.
It reports TFLOP/s (2 x MACs per pixel x pixels / time) and the fraction of that dense rate,
and the kernel's error against PyTorch FP32.

Without a GPU, ``--emulate`` runs the same script on the CPU emulation build at the size given
(timings are then the emulator's and are reported as such): the rehearsal of gpu_evidence.sh.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def cuda_time_ms(fn: Callable[[], object], iterations: int, warmup: int) -> Dict[str, float]:
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iterations):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return _stats(times)


def host_time_ms(fn: Callable[[], object], iterations: int, warmup: int) -> Dict[str, float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return _stats(times)


def _stats(times) -> Dict[str, float]:
    times = sorted(times)
    q = statistics.quantiles(times, n=100) if len(times) > 1 else times * 99
    return {"median": statistics.median(times), "p90": q[89], "p99": q[98], "min": times[0], "n": len(times)}


def channels_last(params, pad_to: int = 8):
    """A (B, NP, GH, GW) view of a channels-last tensor whose cells are padded to ``pad_to``."""
    import torch

    b, c, h, w = params.shape
    store = torch.zeros((b, h, w, c + (-c % pad_to)), dtype=params.dtype, device=params.device)
    store[..., :c] = params.permute(0, 2, 3, 1)
    return store[..., :c].permute(0, 3, 1, 2)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--height", type=int, default=1024)
    p.add_argument("--width", type=int, default=2048)
    p.add_argument("--label-nc", type=int, default=35)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--iterations", type=int, default=100)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--mode", choices=["one_hot", "label_ids"], default="one_hot")
    p.add_argument("--emulate", action="store_true", help="CPU emulation build (a rehearsal)")
    p.add_argument("--library", type=Path, help="a built kernel library (default: build one)")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    import torch
    from conftest import one_hot_of, random_ids, random_params

    from asap_deploy import build_plugin, emulation
    from asap_deploy.fused_mlp import FusedMLP
    from asap_deploy.mlp_spec import MLPSpec
    from asap_deploy.model.pixelwise_mlp import PixelwiseMLP

    if not args.emulate and not torch.cuda.is_available():
        print("error: this benchmark needs a CUDA GPU (or --emulate for a CPU rehearsal)", file=sys.stderr)
        return 2
    dev = "cpu" if args.emulate else "cuda"
    h, w, s = args.height, args.width, args.height // 16
    spec = MLPSpec(args.label_nc, s)
    lib = args.library
    if lib is None:
        out = Path(tempfile.mkdtemp())
        lib = (
            emulation.build_emulation(out)
            if args.emulate
            else build_plugin.build_kernel_library(out, archs=("native",))
        )
    ids = random_ids(spec, args.batch, h, w).to(dev)
    label = one_hot_of(ids.cpu(), args.label_nc - 1, spec.in_channels).to(dev).half()
    params = random_params(spec, args.batch, h // s, w // s).to(dev).half()
    fused = FusedMLP(spec, args.label_nc - 1, args.mode, lib)
    x = ids if args.mode == "label_ids" else label
    out_img = torch.empty(args.batch, 3, h, w, device=dev, dtype=torch.float16)
    timer = host_time_ms if args.emulate else cuda_time_ms
    nhwc = channels_last(params)
    res: Dict[str, object] = {
        "command": " ".join(sys.argv),
        "height": h,
        "width": w,
        "batch": args.batch,
        "mode": args.mode,
        "mlp_channels": spec.channels,
        "emulated": args.emulate,
        "kernel_path": fused.path(x, nhwc),
    }
    with torch.no_grad():
        res["fused_channels_last_ms"] = timer(lambda: fused(x, nhwc, out_img), args.iterations, args.warmup)
        res["fused_nchw_ms"] = timer(lambda: fused(x, params, out_img), args.iterations, args.warmup)
        ref_mod = PixelwiseMLP(spec).to(dev)
        if not args.emulate:  # FP16 matmuls on a CPU are emulated by PyTorch: no reference there
            res["torch_fp16_tile_matmul_ms"] = cuda_time_ms(
                lambda: ref_mod(label, params), args.iterations, args.warmup
            )
            a = torch.randn(8192, 8192, device="cuda", dtype=torch.float16)
            dense = cuda_time_ms(lambda: a @ a, 20, 5)["median"]
            res["dense_fp16_matmul_tflops"] = 2 * 8192**3 / dense / 1e9
        err = (fused(x, nhwc).float() - ref_mod(label.float(), params.float())).abs().max().item()
    res["max_abs_error_vs_fp32"] = err
    flops = 2.0 * spec.macs_per_pixel * h * w * args.batch
    t_fused = res["fused_channels_last_ms"]["median"]
    res["fused_tflops"] = flops / t_fused / 1e9
    if not args.emulate:
        res["fraction_of_dense_fp16"] = res["fused_tflops"] / res["dense_fp16_matmul_tflops"]
        res["speedup_vs_torch_fp16"] = res["torch_fp16_tile_matmul_ms"]["median"] / t_fused
        res["gpu"] = torch.cuda.get_device_name()
        major, minor = torch.cuda.get_device_capability()
        res["compute_capability"] = f"{major}.{minor}"
        res["torch"], res["cuda"] = torch.__version__, torch.version.cuda
    print(json.dumps(res, indent=2))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"fused_mlp_stage_{h}x{w}_{args.mode}.json").write_text(json.dumps(res, indent=2) + "\n")
    return 0 if err <= 5e-3 else 1


if __name__ == "__main__":
    sys.exit(main())
