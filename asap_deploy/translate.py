"""``python -m asap_deploy.translate EXPORT INPUT... --out DIR``: label PNGs in, generated PNGs out.

INPUT are label-map PNGs (class ids, mode L or P) or folders of them; for models trained with
``--no_one_hot`` they are RGB images. Each result is written as ``DIR/<input name>.png``, exactly
the bytes ``asap_deploy.load(EXPORT)`` gives (and what the authors' test.py saves). Models with
instance edges need ``--instance``: a file (one input) or a folder holding, for each label
``X.png``, ``X.png`` or the Cityscapes twin (``..._labelIds.png`` -> ``..._instanceIds.png``).

Every input file, the instance maps and the --out folder are checked before the model is loaded;
the file the backend runs is checked against the export's manifest (SHA-256) when it is loaded.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from . import cli, paths
from .errors import InputError, UsageError


def build_parser() -> argparse.ArgumentParser:
    from .application import BACKENDS

    p = cli.ArgumentParser(prog="python -m asap_deploy.translate", description=__doc__)
    cli.add_export_argument(p)
    p.add_argument(
        "inputs",
        type=Path,
        nargs="+",
        metavar="INPUT",
        help="label PNGs (RGB images for --no_one_hot models) or folders of them",
    )
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    p.add_argument(
        "--backend",
        default="auto",
        choices=BACKENDS,
        help="auto: the export's TensorRT engine on a GPU, else ONNX Runtime",
    )
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: a GPU when there is one)")
    p.add_argument(
        "--instance",
        type=Path,
        metavar="FILE_OR_DIR",
        help="instance-id PNG(s), for models with instance edges",
    )
    p.add_argument("--batch", type=int, default=1, metavar="N", help="images per inference call")
    p.add_argument(
        "--resize",
        action="store_true",
        help="resize inputs of another size to the model's, as the authors' loader "
        "does (nearest for ids, bicubic for RGB); without it they are an error",
    )
    p.add_argument(
        "--side-by-side",
        action="store_true",
        help="also write DIR/side-by-side/<name>.png: colourised label | image",
    )
    return p


#: the label maps of a Cityscapes gtFine folder (the other PNGs there are instances and colours)
CITYSCAPES_LABELS = "_labelIds.png"


def _collect(inputs: Sequence[Path], suffixes: Tuple[str, ...]) -> List[Path]:
    files: List[Path] = []
    for path in inputs:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in suffixes)
            if any(p.name.endswith(CITYSCAPES_LABELS) for p in found):
                # a folder laid out like Cityscapes' gtFine: its *_instanceIds.png and *_color.png
                # sit beside the label maps and are not inputs
                found = [p for p in found if p.name.endswith(CITYSCAPES_LABELS)]
            if not found:
                raise InputError(f"{path} holds no {'/'.join(suffixes)} files")
            files += [paths.input_file(f, "input image") for f in found]
        else:
            files.append(paths.input_file(path, "input", "a label PNG or a folder of them"))
    names = {}
    for f in files:
        if f.stem in names:
            raise InputError(
                f"{f} and {names[f.stem]} would both be written as {f.stem}.png: "
                f"translate them into separate --out folders"
            )
        names[f.stem] = f
    return files


def _instance_for(label: Path, instance: Path, single: bool) -> Path:
    if instance.is_file():
        paths.input_file(instance, "instance map")
        if not single:
            raise InputError(
                f"--instance {instance} is one file but there are several inputs: "
                f"pass the folder holding their instance maps"
            )
        return instance
    if not instance.is_dir():
        raise InputError(f"--instance {instance} not found")
    # in the label maps' own folder (Cityscapes' gtFine layout) X.png is the label map itself
    same = (instance / label.name).resolve() == label.resolve()
    tries = [] if same else [instance / label.name]
    if "labelIds" in label.name:
        tries.append(instance / label.name.replace("labelIds", "instanceIds"))
    for t in tries:
        if t.is_file():
            return paths.input_file(t, "instance map")
    raise InputError(
        f"no instance map for {label.name} in {instance} (looked for {' or '.join(t.name for t in tries)})"
    )


class _Progress:
    """A one-line bar on a terminal; a few plain lines otherwise (logs, CI)."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.t0 = total, 0, time.perf_counter()
        self.tty = sys.stderr.isatty()
        self.every = max(1, total // 10)

    def advance(self, n: int) -> None:
        self.done += n
        rate = self.done / max(time.perf_counter() - self.t0, 1e-9)
        bar = "#" * int(30 * self.done / self.total)
        line = f"[{bar:<30}] {self.done}/{self.total} images, {rate:.1f} img/s"
        if self.tty:
            print(f"\r{line}", end="" if self.done < self.total else "\n", file=sys.stderr, flush=True)
        elif self.done == self.total or self.done % self.every < n:
            print(line, file=sys.stderr, flush=True)


def _model(path: Path):
    """The export's configuration, the export verified against its manifest, before anything
    is loaded (None when ``path`` is not in an export folder: ``load`` then says why)."""
    from .artifacts import MANIFEST, ExportFolder, find_export

    if path.is_dir() or path.name == MANIFEST:
        return ExportFolder(path).verify().config
    export = find_export(path) if path.is_file() else None
    if export is None:
        return None
    export.verify().listed_file(path)
    return export.config


def run(args: argparse.Namespace) -> int:
    from . import image_io
    from .application import load

    if args.batch < 1:
        raise UsageError(f"--batch must be at least 1, got {args.batch}")
    # every path before the model is loaded (seconds to minutes for a large engine)
    paths.output_dir(args.out, "output folder")
    cfg = _model(args.export)
    if cfg is not None:
        files, insts = _plan(args, cfg, image_io)
    gen = load(args.export, args.backend, args.device)
    try:
        if cfg is None:
            files, insts = _plan(args, gen.config, image_io)
        rgb = gen.input_mode == "rgb"
        print(
            f"{len(files)} image{'s' * (len(files) != 1)} -> {args.out} with {gen.backend} "
            f"({gen.height}x{gen.width})",
            flush=True,
        )
        for note in gen.notes:
            print(f"note: {note}", flush=True)
        size = (gen.height, gen.width) if args.resize else None
        progress = _Progress(len(files))
        for start in range(0, len(files), args.batch):
            chunk = files[start : start + args.batch]
            xs = [image_io.read_rgb(f, size) if rgb else image_io.read_ids(f, size=size) for f in chunk]
            ins = [
                image_io.read_ids(i, "instance map", size)
                for i in insts[start : start + len(chunk)]
                if i is not None
            ]
            images = _run_batch(gen, xs, ins, chunk, insts[start : start + len(chunk)])
            for f, x, img in zip(chunk, xs, images):
                image_io.write_png(args.out / f"{f.stem}.png", img)
                if args.side_by_side:
                    left = x if rgb else image_io.colourise(x, gen.config.one_hot_channels)
                    image_io.write_png(
                        args.out / "side-by-side" / f"{f.stem}.png", image_io.side_by_side(left, img)
                    )
            progress.advance(len(chunk))
    finally:
        gen.close()
    return 0


def _plan(args: argparse.Namespace, cfg, image_io) -> Tuple[List[Path], List[Optional[Path]]]:
    """The input files and, for models with instance edges, the instance map of each."""
    rgb = cfg.no_one_hot
    files = _collect(args.inputs, image_io.RGB_SUFFIXES if rgb else image_io.LABEL_SUFFIXES)
    if cfg.instance_edge and args.instance is None:
        raise InputError(
            "this model uses instance edges: pass --instance FILE_OR_DIR (instance"
            "-id PNGs, e.g. Cityscapes *_instanceIds.png)"
        )
    if not cfg.instance_edge and args.instance is not None:
        raise InputError("this model has no instance-edge channel: drop --instance")
    insts = [
        None if args.instance is None else _instance_for(f, args.instance, len(files) == 1) for f in files
    ]
    return files, insts


def _run_batch(gen, xs, ins, chunk, inst_files):
    """One call for the chunk; on a bad input, the file it came from is named (the instance
    map's file when the instance map is what is wrong)."""
    import numpy as np

    ins = ins or [None] * len(xs)
    stackable = len({x.shape for x in xs}) == 1 and len({getattr(i, "shape", None) for i in ins}) == 1
    if len(chunk) > 1 and stackable:
        try:
            return list(gen(np.stack(xs), None if ins[0] is None else np.stack(ins)))
        except InputError:
            pass  # found again below, with the file's name
    out = []
    for f, x, i, fi in zip(chunk, xs, ins, inst_files):
        try:
            out.append(gen(x, i))
        except InputError as exc:
            blamed = fi if fi is not None and str(exc).startswith("instance map") else f
            raise InputError(f"{blamed}: {exc}") from None
    return out


main = cli.entry(build_parser, run)


if __name__ == "__main__":
    sys.exit(main())
