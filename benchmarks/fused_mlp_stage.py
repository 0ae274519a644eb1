"""Pixelwise-MLP stage benchmark: fused CUDA kernel vs the PyTorch FP16 tile-matmul path.

    python benchmarks/fused_mlp_stage.py --height 1024 --width 2048 --out benchmarks/results/<gpu>

Measures, in one run on one GPU, the stage alone (params precomputed): median GPU time from CUDA
events over --iterations runs after warm-up, for the fused kernel (libasap_spatial_mlp.so, built
for this GPU on the fly) and for asap_deploy's PixelwiseMLP in FP16 (the authors' algorithm:
tiles + batched MatMul). Reports achieved TFLOP/s (2 x MACs per pixel x pixels / time) against
the GPU's dense FP16 tensor-core peak. Needs a CUDA GPU and nvcc.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: dense FP16 tensor-core TFLOP/s with FP32 accumulation (vendor datasheets)
PEAK_FP16_TFLOPS = {"H100 80GB HBM3": 989.0, "H100 PCIe": 756.0, "H200": 989.0,
                    "A100": 312.0, "RTX 2080 Ti": 53.8, "RTX 4090": 165.2, "L4": 121.0}


def peak_for(name: str):
    for key, val in PEAK_FP16_TFLOPS.items():
        if key in name:
            return val
    return None


def time_ms(fn, iterations: int, warmup: int) -> float:
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
    times.sort()
    return times[len(times) // 2]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--height", type=int, default=1024)
    p.add_argument("--width", type=int, default=2048)
    p.add_argument("--label-nc", type=int, default=35)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--iterations", type=int, default=100)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--mode", choices=["one_hot", "label_ids"], default="one_hot")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("error: this benchmark needs a CUDA GPU", file=sys.stderr)
        return 2
    from asap_deploy import build_plugin
    from asap_deploy.fused_mlp import FusedMLP
    from asap_deploy.mlp_spec import MLPSpec
    from asap_deploy.model.pixelwise_mlp import PixelwiseMLP
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import one_hot_of, random_ids, random_params

    h, w, s = args.height, args.width, args.height // 16
    spec = MLPSpec(args.label_nc, s)
    major, minor = torch.cuda.get_device_capability()
    lib = build_plugin.build_kernel_library(Path(tempfile.mkdtemp()), archs=(f"{major}{minor}",))
    ids = random_ids(spec, args.batch, h, w).cuda()
    label = one_hot_of(ids, args.label_nc - 1, spec.in_channels).cuda().half()
    params = random_params(spec, args.batch, h // s, w // s).cuda().half()
    fused = FusedMLP(spec, args.label_nc - 1, args.mode, lib)
    x = ids if args.mode == "label_ids" else label
    out = torch.empty(args.batch, 3, h, w, device="cuda", dtype=torch.float16)
    ref_mod = PixelwiseMLP(spec).cuda()
    with torch.no_grad():
        t_fused = time_ms(lambda: fused(x, params, out), args.iterations, args.warmup)
        t_torch = time_ms(lambda: ref_mod(label, params), args.iterations, args.warmup)
        err = (fused(x, params).float() - ref_mod(label.float(), params.float())).abs().max().item()
    flops = 2.0 * spec.macs_per_pixel * h * w * args.batch
    name = torch.cuda.get_device_name()
    peak = peak_for(name)
    res = {
        "gpu": name, "compute_capability": f"{major}.{minor}", "torch": torch.__version__,
        "cuda": torch.version.cuda, "command": " ".join(sys.argv), "height": h, "width": w,
        "batch": args.batch, "mode": args.mode, "mlp_channels": spec.channels,
        "tensor_cores": fused.uses_tensor_cores(torch.float16),
        "fused_ms": t_fused, "torch_fp16_tile_matmul_ms": t_torch, "speedup": t_torch / t_fused,
        "fused_tflops": flops / t_fused / 1e9, "peak_fp16_tflops": peak,
        "fraction_of_peak": (flops / t_fused / 1e9 / peak) if peak else None,
        "max_abs_error_vs_fp32": err,
    }
    print(json.dumps(res, indent=2))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"fused_mlp_stage_{h}x{w}_{args.mode}.json").write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
