"""``python -m asap_deploy.export ckpt.pth``: checkpoint in, a deployable folder out.

With no options: FP32 and FP16 ONNX graphs, the manifest (the index of every file), parity
figures and, where TensorRT or TensorRT for RTX is installed, the FP16 engine beside them (built
in a child process and added to the manifest).

Paths are checked before any work. The export is written into a staging folder beside ``--out``
and takes its place only when every graph exported, validated and was written
(``folder_swap``): an error, Ctrl-C or a crash never leaves a half-written or missing ``--out``,
and the next run cleans up after one that died.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from . import cli, folder_swap, paths
from .errors import EXIT_TOOL, EXIT_VERIFICATION, ConfigError, UsageError

EXIT_PARITY = EXIT_VERIFICATION
EXIT_ENGINE = EXIT_TOOL  # the graphs are complete; TensorRT failed on them


def _bool_flag(p: argparse.ArgumentParser, name: str, help: str) -> None:
    p.add_argument(
        f"--{name}",
        dest=name.replace("-", "_"),
        action=argparse.BooleanOptionalAction,
        default=None,
        help=help,
    )


def build_parser() -> argparse.ArgumentParser:
    p = cli.ArgumentParser(
        prog="python -m asap_deploy.export",
        description="Export an ASAP-Net generator checkpoint to ONNX (g, mlp, asapnet, "
        "asapnet_plugin; FP32 and FP16) with a manifest and on-the-spot parity "
        "figures, and the FP16 TensorRT engine where TensorRT is installed.",
        formatter_class=argparse.HelpFormatter,  # one sentence, wrapped to the terminal
    )
    p.add_argument("checkpoint", nargs="?", help="the authors' *_net_G.pth (omit with --demo)")
    p.add_argument(
        "--demo", metavar="PRESET", help="export a deterministic built-in model with a preset's configuration"
    )
    p.add_argument(
        "--preset", metavar="NAME", help="resolution and dataset options of a paper setting (see export/)"
    )
    p.add_argument("--out", type=Path, help="output folder (default build/<preset or checkpoint>)")
    p.add_argument("--height", type=int, help="image height; must be 16*S of the checkpoint")
    p.add_argument("--width", type=int, help="image width; a multiple of S")
    p.add_argument(
        "--input",
        choices=["one-hot", "labels", "rgb"],
        help="graph input: float one-hot `label` (default for label models), int32 "
        "`label_map` (+`instance_map`) with one-hot and edges computed in-graph, "
        "or uint8 `rgb` images for models trained with --no_one_hot (the default "
        "when opt.txt says so; give it where there is no opt.txt)",
    )
    p.add_argument(
        "--precision",
        nargs="+",
        choices=["fp32", "fp16"],
        default=["fp32", "fp16"],
        help="one or both (default both); FP16 files get a _fp16 suffix",
    )
    p.add_argument(
        "--engine",
        choices=["auto", "none", "tensorrt", "tensorrt_rtx"],
        default="auto",
        help="build the FP16 TensorRT engine beside the graphs: auto (where tensorrt "
        "or tensorrt_rtx is installed), none, or that module",
    )
    p.add_argument("--no-parity", action="store_true", help="skip the ONNX Runtime parity check")
    p.add_argument("--parity-batch", type=int, default=1, help="batch size of the parity check")
    p.add_argument(
        "--force",
        action="store_true",
        help="replace --out even if it holds files that are not an earlier export",
    )
    arch = p.add_argument_group(
        "architecture overrides (win over opt.txt and the tensors' defaults; what the tensors fix must agree)"
    )
    arch.add_argument("--label-nc", type=int)
    _bool_flag(arch, "contain-dontcare-label", "one-hot has an extra don't-care channel")
    _bool_flag(arch, "instance-edge", "the last input channel is the instance-edge map")
    _bool_flag(arch, "lr-instance", "the edge channel feeds only the low-res stream")
    arch.add_argument("--padding", choices=["zero", "reflect", "replicate"])
    arch.add_argument("--hr-width", type=int)
    arch.add_argument("--hr-depth", type=int)
    arch.add_argument("--output-nc", type=int)
    arch.add_argument(
        "--no-opt-file", action="store_true", help="ignore opt.txt / opt.pkl beside the checkpoint"
    )
    return p


def _overrides(args: argparse.Namespace) -> Dict[str, Any]:
    names = [
        "label_nc",
        "contain_dontcare_label",
        "instance_edge",
        "lr_instance",
        "padding",
        "hr_width",
        "hr_depth",
        "output_nc",
    ]
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
    from .training_options import FIELD_OPTIONS

    preset = load_preset(args.preset or args.demo) if (args.preset or args.demo) else None
    overrides = {**(preset.generator if preset else {}), **_overrides(args)}
    if args.input == "rgb":  # the authors' --no_one_hot, which needs --label_nc 3
        overrides.setdefault("label_nc", 3)
        overrides.update(no_one_hot=True)
    if args.demo:
        say(f"building demo model {args.demo!r} (deterministic weights, paper widths)")
        from .config import GeneratorConfig

        cfg = GeneratorConfig.from_dict(overrides)
        return demo_generator(cfg), {"demo": args.demo}, preset, None
    say(f"loading {args.checkpoint}")
    overrides.pop("downsampling", None)  # the checkpoint's tensors fix S
    ckpt = load_checkpoint(Path(args.checkpoint), overrides, use_options_file=not args.no_opt_file)
    for note in ckpt.notes:
        say.detail(f"note: {note}")
    split = ("label_nc", "contain_dontcare_label", "instance_edge")
    options = [o for field in split for o in FIELD_OPTIONS[field]]  # opt.txt's names for them
    if not any(f in overrides for f in split) and not any(o in ckpt.options for o in options):
        # the tensors cannot tell the label split: the guess must be visible and correctable
        c = ckpt.config
        say.detail(
            f"note: no opt.txt or flag gives the label split: assuming label_nc {c.label_nc}, "
            f"contain_dontcare_label {c.contain_dontcare_label}, instance_edge {c.instance_edge} "
            "(pass --label-nc / --[no-]contain-dontcare-label / --[no-]instance-edge, or put the "
            "training's opt.txt beside the checkpoint, if it was trained otherwise)"
        )
    for warning in ckpt.warnings:
        print(f"warning: {warning}", file=sys.stderr, flush=True)
    from .export_folder import sha256_file

    source = {"checkpoint": str(Path(args.checkpoint).resolve()), "sha256": sha256_file(args.checkpoint)}
    return ckpt.build_generator(), source, preset, ckpt.suggested_width


def _resolution(args, cfg, preset, suggested_width, say: Progress):
    height = args.height or (preset.height if preset else cfg.height)
    width = args.width or (preset.width if preset else suggested_width)
    if width is None:
        width = height
        say.detail(
            f"note: no --width and no opt.txt crop_size: exporting a square {height}x{width}"
            f" image (pass --width for another aspect ratio)"
        )
    cfg.check_resolution(height, width)
    return height, width


def _check_args(args: argparse.Namespace) -> Path:
    """Everything that can fail without doing work; returns the resolved --out."""
    if args.demo and args.checkpoint:
        raise UsageError("give either a checkpoint or --demo, not both")
    if not args.demo and not args.checkpoint:
        raise UsageError(
            "no checkpoint given: pass path/to/latest_net_G.pth, or --demo PRESET for a built-in model"
        )
    if args.parity_batch < 1:
        raise UsageError(f"--parity-batch must be >= 1, got {args.parity_batch}")
    for flag in ("height", "width", "label_nc", "hr_width", "hr_depth", "output_nc"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise UsageError(f"--{flag.replace('_', '-')} must be a positive integer, got {value}")
    if args.checkpoint:
        from .errors import CheckpointError, InputPathError

        try:
            paths.input_file(
                args.checkpoint,
                "checkpoint",
                "the authors' files are named like checkpoints/<name>/latest_net_G.pth",
            )
        except InputPathError as exc:
            raise CheckpointError(str(exc)) from None
    name = args.demo or args.preset or Path(args.checkpoint).resolve().parent.name or "model"
    out = Path(args.out or Path("build") / name).resolve()
    paths.output_dir(out, "export folder")
    folder_swap.check_replaceable(out, args.force)
    return out


def _make_dirs(folder: Path) -> List[Path]:
    """mkdir -p that returns what it created, so a failed export can take it back."""
    created: List[Path] = []
    for p in reversed([folder, *folder.parents]):
        if not p.exists():
            p.mkdir()
            created.append(p)
    return created


def _remove_empty(created: List[Path]) -> None:
    for p in reversed(created):
        try:
            p.rmdir()
        except OSError:
            break


def run(args: argparse.Namespace) -> int:
    import torch

    from .metrics import format_metrics
    from .onnx_export.exporter import GRAPHS, export_graphs, trace_graphs
    from .onnx_export.manifest import build_manifest, file_entry
    from .onnx_export.verify import FP16_MIN_PSNR, FP32_MAX_ABS, verify

    out = _check_args(args)
    engine_module = _engine_module(args)
    steps = 3 + len(args.precision) * (1 if args.no_parity else 2) + int(engine_module is not None)
    say = Progress(steps)
    for note in folder_swap.recover(out):
        say.detail(f"note: {note}")
    torch.set_grad_enabled(False)
    gen, source, preset, suggested = _load_model(args, say)
    cfg = gen.config
    height, width = _resolution(args, cfg, preset, suggested, say)
    say.detail(
        f"S={cfg.downsampling} grid={height // cfg.downsampling}x{width // cfg.downsampling}"
        f" in_channels={cfg.in_channels} padding={cfg.padding} lr_instance={cfg.lr_instance}"
        f" MLP {cfg.mlp_spec.channels} ({cfg.num_params} params/cell)"
    )
    input_mode = _input_mode(args.input, cfg)
    created = _make_dirs(out.parent)
    tmp = folder_swap.staging_dir(out)
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
                say(
                    f"parity of {precision} graphs vs PyTorch FP32 (ONNX Runtime CPU, "
                    f"batch {args.parity_batch})"
                )
                res = verify(gen, graphs, height, width, batch=args.parity_batch)
                for g, m in res.items():
                    say.detail(
                        f"{graphs[g].filename:<28} {format_metrics(m)}{'' if m['ok'] else '   <-- FAIL'}"
                    )
                parity[precision] = res
        manifest = build_manifest(cfg, height, width, input_mode, files, source, parity, plugin_mode)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        say(f"writing {out}")
        for note in folder_swap.replace(tmp, out, args.force):
            say.detail(f"note: {note}")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty(created)
        raise

    print(f"\nexported {len(files)} graphs to {out} in {say.elapsed():.1f}s")
    for f in files:
        print(f"  {f['file']:<28} {f['bytes'] / 2**20:8.1f} MiB")
    print(f"  {'manifest.json':<28}")
    failed = [f"{p}/{g}" for p, r in parity.items() for g, m in r.items() if not m["ok"]]
    if parity:
        print(
            f"parity: FP32 image max abs <= {FP32_MAX_ABS:g}, FP16 PSNR >= {FP16_MIN_PSNR:g} dB: "
            + ("all pass" if not failed else f"FAILED for {', '.join(failed)}")
        )
    if failed:
        print(
            "error: parity failed; the files are written for inspection, but do not deploy "
            "them. Please report this with the command line.",
            file=sys.stderr,
        )
        return EXIT_PARITY
    if engine_module is not None:
        return _build_engine(out, engine_module, say)
    return 0


def _input_mode(asked: Optional[str], cfg) -> str:
    if cfg.no_one_hot:
        if asked not in (None, "rgb"):
            raise ConfigError(
                f"this model takes RGB images (trained with --no_one_hot), so its "
                f"graphs take `rgb`: drop --input {asked} or pass --input rgb"
            )
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
        print("note: no TensorRT module here (tensorrt or tensorrt-rtx): no engine built", flush=True)
        return None


def _build_engine(out: Path, module: str, say: Progress) -> int:
    """The FP16 engine beside the graphs (with the C++ plugin when it is built), in a child
    process; ``build`` adds it to the manifest."""
    from .engine.builder import BuildError
    from .engine.naming import engine_path
    from .engine.plugins import auto_choice
    from .engine.subprocess_build import build_engine_isolated

    plugin = auto_choice(module)
    onnx_path = out / ("asapnet_plugin_fp16.onnx" if plugin != "none" else "asapnet_fp16.onnx")
    plan = engine_path(onnx_path, module)
    how = (
        "with the ASAP_SpatialMLP plugin"
        if plugin != "none"
        else "standard ops: build the plugin (python -m asap_deploy.build_plugin) for the fused MLP"
    )
    say(f"building the FP16 engine with {module}, {how}")
    t0 = time.perf_counter()
    try:
        build_engine_isolated(onnx_path, plan, module=module, plugin=plugin)
    except BuildError as exc:
        print(
            f"error: {exc}; the ONNX graphs in {out} are complete: build the engine later with "
            f"python -m asap_deploy.build {onnx_path}",
            file=sys.stderr,
        )
        return EXIT_ENGINE
    print(f"  {plan.name:<28} {plan.stat().st_size / 2**20:8.1f} MiB  ({time.perf_counter() - t0:.1f}s)")
    return 0


main = cli.entry(build_parser, run)


if __name__ == "__main__":
    sys.exit(main())
