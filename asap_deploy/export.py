"""``python -m asap_deploy.export ckpt.pth``: checkpoint in, a deployable folder out.

With no options: FP32 and FP16 ONNX graphs, the manifest (the index of every file), parity
figures and, where TensorRT or TensorRT for RTX is installed, the FP16 engine beside them.
Writes into a temporary folder beside ``--out`` and renames it into place only when every graph
exported, validated and was written: an error never leaves a half-written output folder. The
engine is then built in a child process and added to the manifest.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from .errors import AsapDeployError, ConfigError

EXIT_PARITY = 1
EXIT_ENGINE = 1


def _bool_flag(p: argparse.ArgumentParser, name: str, help: str) -> None:
    p.add_argument(f"--{name}", dest=name.replace("-", "_"), action=argparse.BooleanOptionalAction,
                   default=None, help=help)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m asap_deploy.export",
        description="Export an ASAP-Net generator checkpoint to ONNX (g, mlp, asapnet, "
                    "asapnet_plugin; FP32 and FP16) with a manifest and on-the-spot parity "
                    "figures, and the FP16 TensorRT engine where TensorRT is installed.")
    p.add_argument("checkpoint", nargs="?", help="the authors' *_net_G.pth (omit with --demo)")
    p.add_argument("--demo", metavar="PRESET",
                   help="export a deterministic built-in model with a preset's configuration")
    p.add_argument("--preset", metavar="NAME",
                   help="resolution and dataset options of a paper setting (see export/)")
    p.add_argument("--out", type=Path, help="output folder (default build/<preset or checkpoint>)")
    p.add_argument("--height", type=int, help="image height; must be 16*S of the checkpoint")
    p.add_argument("--width", type=int, help="image width; a multiple of S")
    p.add_argument("--input", choices=["one-hot", "labels", "rgb"],
                   help="graph input: float one-hot `label` (default for label models), int32 "
                        "`label_map` (+`instance_map`) with one-hot and edges computed in-graph, "
                        "or uint8 `rgb` images for models trained with --no_one_hot (the default "
                        "when opt.txt says so; give it where there is no opt.txt)")
    p.add_argument("--precision", nargs="+", choices=["fp32", "fp16"], default=["fp32", "fp16"],
                   help="one or both (default both); FP16 files get a _fp16 suffix")
    p.add_argument("--engine", choices=["auto", "none", "tensorrt", "tensorrt_rtx"],
                   default="auto",
                   help="build the FP16 TensorRT engine beside the graphs: auto (where tensorrt "
                        "or tensorrt_rtx is installed), none, or that module")
    p.add_argument("--no-parity", action="store_true", help="skip the ONNX Runtime parity check")
    p.add_argument("--parity-batch", type=int, default=1, help="batch size of the parity check")
    p.add_argument("--force", action="store_true",
                   help="replace --out even if it holds files that are not an earlier export")
    arch = p.add_argument_group("architecture overrides (win over opt.txt and the tensors' "
                                "defaults; what the tensors fix must agree)")
    arch.add_argument("--label-nc", type=int)
    _bool_flag(arch, "contain-dontcare-label", "one-hot has an extra don't-care channel")
    _bool_flag(arch, "instance-edge", "the last input channel is the instance-edge map")
    _bool_flag(arch, "lr-instance", "the edge channel feeds only the low-res stream")
    arch.add_argument("--padding", choices=["zero", "reflect", "replicate"])
    arch.add_argument("--hr-width", type=int)
    arch.add_argument("--hr-depth", type=int)
    arch.add_argument("--output-nc", type=int)
    arch.add_argument("--no-opt-file", action="store_true",
                      help="ignore opt.txt / opt.pkl beside the checkpoint")
    return p


def _overrides(args: argparse.Namespace) -> Dict[str, Any]:
    names = ["label_nc", "contain_dontcare_label", "instance_edge", "lr_instance", "padding",
             "hr_width", "hr_depth", "output_nc"]
    return {n: getattr(args, n) for n in names if getattr(args, n) is not None}


class Progress:
    def __init__(self, total: int) -> None:
        self.total, self.step, self.t0 = total, 0, time.perf_counter()

    def __call__(self, msg: str) -> None:
        self.step += 1
        print(f"[{self.step}/{self.total}] {msg}", flush=True)

    def detail(self, msg: str) -> None:
        print(f"      {msg}", flush=True)

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0


def _load_model(args: argparse.Namespace, say: Progress):
    from .checkpoint import load_checkpoint
    from .demo import demo_generator
    from .presets import load_preset

    preset = load_preset(args.preset or args.demo) if (args.preset or args.demo) else None
    overrides = {**(preset.generator if preset else {}), **_overrides(args)}
    if args.input == "rgb":  # the authors' --no_one_hot, which needs --label_nc 3
        overrides.setdefault("label_nc", 3)
        overrides.update(no_one_hot=True)
    if args.demo:
        if args.checkpoint:
            raise ConfigError("give either a checkpoint or --demo, not both")
        say(f"building demo model {args.demo!r} (deterministic weights, paper widths)")
        from .config import GeneratorConfig

        cfg = GeneratorConfig.from_dict(overrides)
        return demo_generator(cfg), {"demo": args.demo}, preset, None
    if not args.checkpoint:
        raise ConfigError("no checkpoint given: pass path/to/latest_net_G.pth, or --demo PRESET "
                          "for a built-in model")
    say(f"loading {args.checkpoint}")
    overrides.pop("downsampling", None)  # the checkpoint's tensors fix S
    ckpt = load_checkpoint(Path(args.checkpoint), overrides, use_options_file=not args.no_opt_file)
    for note in ckpt.notes:
        say.detail(f"note: {note}")
    from .onnx_export.manifest import sha256

    source = {"checkpoint": str(Path(args.checkpoint).resolve()),
              "sha256": sha256(Path(args.checkpoint).read_bytes())}
    return ckpt.build_generator(), source, preset, ckpt.suggested_width


def _resolution(args, cfg, preset, suggested_width, say: Progress):
    height = args.height or (preset.height if preset else cfg.height)
    width = args.width or (preset.width if preset else suggested_width)
    if width is None:
        width = height
        say.detail(f"note: no --width and no opt.txt crop_size: exporting a square {height}x{width}"
                   f" image (pass --width for another aspect ratio)")
    cfg.check_resolution(height, width)
    return height, width


def _check_out(out: Path, force: bool) -> None:
    """Refuse to replace what is not an earlier export (checked before the work and again when
    the result is moved into place)."""
    if out.exists():
        if not out.is_dir():
            raise ConfigError(f"--out {out} exists and is not a folder")
        if any(out.iterdir()) and not (out / "manifest.json").exists() and not force:
            raise ConfigError(f"--out {out} holds files that are not an asap_deploy export; "
                              f"choose another folder or pass --force")


def _replace_dir(tmp: Path, out: Path, force: bool) -> None:
    _check_out(out, force)
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out)


def run(args: argparse.Namespace) -> int:
    import torch

    from .fileio import make_temp_dir
    from .onnx_export.exporter import GRAPHS, export_graphs, trace_graphs
    from .onnx_export.manifest import build_manifest, file_entry
    from .onnx_export.verify import FP16_MIN_PSNR, FP32_MAX_ABS, verify
    from .metrics import format_metrics

    engine_module = _engine_module(args)
    steps = 3 + len(args.precision) * (1 if args.no_parity else 2) + int(engine_module is not None)
    say = Progress(steps)
    torch.set_grad_enabled(False)
    gen, source, preset, suggested = _load_model(args, say)
    cfg = gen.config
    height, width = _resolution(args, cfg, preset, suggested, say)
    say.detail(f"S={cfg.downsampling} grid={height // cfg.downsampling}x{width // cfg.downsampling}"
               f" in_channels={cfg.in_channels} padding={cfg.padding} lr_instance={cfg.lr_instance}"
               f" MLP {cfg.mlp_spec.channels} ({cfg.num_params} params/cell)")
    name = args.demo or args.preset or Path(args.checkpoint).parent.name or "model"
    out = (args.out or Path("build") / name).resolve()
    input_mode = _input_mode(args.input, cfg)
    _check_out(out, args.force)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_dir(out.parent, f".{out.name}.tmp-")
    try:
        files: List[Dict[str, Any]] = []
        parity: Dict[str, Any] = {}
        plugin_mode = "one_hot"
        say(f"tracing {height}x{width}, input {input_mode}")
        traced = trace_graphs(gen, height, width, input_mode, log=say.detail)
        for precision in args.precision:
            say(f"building {precision} graphs")
            graphs = export_graphs(gen, height, width, precision, traced, log=say.detail)
            plugin_mode = graphs["asapnet_plugin"].plugin_mode or plugin_mode
            for g in GRAPHS:
                data = graphs[g].model.SerializeToString()
                (tmp / graphs[g].filename).write_bytes(data)
                files.append(file_entry(graphs[g], data))
            if not args.no_parity:
                say(f"parity of {precision} graphs vs PyTorch FP32 (ONNX Runtime CPU, "
                    f"batch {args.parity_batch})")
                res = verify(gen, graphs, height, width, batch=args.parity_batch)
                for g, m in res.items():
                    say.detail(f"{graphs[g].filename:<28} {format_metrics(m)}"
                               f"{'' if m['ok'] else '   <-- FAIL'}")
                parity[precision] = res
        manifest = build_manifest(cfg, height, width, input_mode, files, source, parity,
                                  plugin_mode)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        say(f"writing {out}")
        _replace_dir(tmp, out, args.force)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

    print(f"\nexported {len(files)} graphs to {out} in {say.elapsed():.1f}s")
    for f in files:
        print(f"  {f['file']:<28} {f['bytes'] / 2**20:8.1f} MiB")
    print(f"  {'manifest.json':<28}")
    failed = [f"{p}/{g}" for p, r in parity.items() for g, m in r.items() if not m["ok"]]
    if parity:
        print(f"parity: FP32 image max abs <= {FP32_MAX_ABS:g}, FP16 PSNR >= {FP16_MIN_PSNR:g} dB: "
              + ("all pass" if not failed else f"FAILED for {', '.join(failed)}"))
    if failed:
        print("error: parity failed; the files are written for inspection, but do not deploy "
              "them. Please report this with the command line.", file=sys.stderr)
        return EXIT_PARITY
    if engine_module is not None:
        return _build_engine(out, engine_module, say)
    return 0


def _input_mode(asked: Optional[str], cfg) -> str:
    if cfg.no_one_hot:
        if asked not in (None, "rgb"):
            raise ConfigError(f"this model takes RGB images (trained with --no_one_hot), so its "
                              f"graphs take `rgb`: drop --input {asked} or pass --input rgb")
        return "rgb"
    return asked or "one-hot"


def _engine_module(args: argparse.Namespace) -> Optional[str]:
    """The TensorRT module the engine is built with, or None (said why when it matters)."""
    if args.engine == "none":
        return None
    if "fp16" not in args.precision:
        if args.engine != "auto":
            raise ConfigError("--engine builds the FP16 engine: add fp16 to --precision")
        return None
    from .engine.trt_module import import_tensorrt
    from .errors import MissingDependencyError

    try:
        return import_tensorrt(args.engine)[1]
    except MissingDependencyError:
        if args.engine != "auto":
            raise
        print("note: no TensorRT module here (tensorrt or tensorrt-rtx): no engine built",
              flush=True)
        return None


def _build_engine(out: Path, module: str, say: "Progress") -> int:
    """The FP16 engine beside the graphs (with the C++ plugin when it is built), in a child
    process; ``build`` adds it to the manifest."""
    from .engine.builder import BuildError
    from .engine.naming import engine_path
    from .engine.plugins import auto_choice
    from .engine.subprocess_build import build_engine_isolated

    plugin = auto_choice(module)
    onnx_path = out / ("asapnet_plugin_fp16.onnx" if plugin != "none" else "asapnet_fp16.onnx")
    plan = engine_path(onnx_path, module)
    how = ("with the ASAP_SpatialMLP plugin" if plugin != "none" else
           "standard ops: build the plugin (python -m asap_deploy.build_plugin) for the fused MLP")
    say(f"building the FP16 engine with {module}, {how}")
    t0 = time.perf_counter()
    try:
        build_engine_isolated(onnx_path, plan, module=module, plugin=plugin)
    except BuildError as exc:
        print(f"error: {exc}; the ONNX graphs in {out} are complete: build the engine later with "
              f"python -m asap_deploy.build {onnx_path}", file=sys.stderr)
        return EXIT_ENGINE
    print(f"  {plan.name:<28} {plan.stat().st_size / 2**20:8.1f} MiB  "
          f"({time.perf_counter() - t0:.1f}s)")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except AsapDeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted; nothing was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
