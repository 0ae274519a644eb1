"""``python -m asap_deploy.translate EXPORT INPUT... --out DIR``: label PNGs in, generated PNGs out.

INPUT are label-map PNGs (class ids, mode L or P) or folders of them; for models trained with
``--no_one_hot`` they are RGB images. Each result is written as ``DIR/<input name>.png``, exactly
the bytes ``asap_deploy.load(EXPORT)`` gives (and what the authors' test.py saves). Models with
instance edges need ``--instance``: a file (one input) or a folder holding, for each label
``X.png``, ``X.png`` or the Cityscapes twin (``..._labelIds.png`` -> ``..._instanceIds.png``).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from .errors import AsapDeployError, ConfigError, InputError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m asap_deploy.translate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("export", type=Path, metavar="EXPORT",
                   help="export folder (python -m asap_deploy.export), or an engine or ONNX "
                        "file in one")
    p.add_argument("inputs", type=Path, nargs="+", metavar="INPUT",
                   help="label PNGs (RGB images for --no_one_hot models) or folders of them")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    p.add_argument("--backend", default="auto",
                   choices=["auto", "onnxruntime", "tensorrt", "tensorrt_rtx", "torch"],
                   help="auto: the export's TensorRT engine on a GPU, else ONNX Runtime")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: a GPU when there is one)")
    p.add_argument("--instance", type=Path, metavar="FILE_OR_DIR",
                   help="instance-id PNG(s), for models with instance edges")
    p.add_argument("--batch", type=int, default=1, metavar="N", help="images per inference call")
    p.add_argument("--resize", action="store_true",
                   help="resize inputs of another size to the model's, as the authors' loader "
                        "does (nearest for ids, bicubic for RGB); without it they are an error")
    p.add_argument("--side-by-side", action="store_true",
                   help="also write DIR/side-by-side/<name>.png: colourised label | image")
    return p


def _collect(inputs: Sequence[Path], suffixes: Tuple[str, ...]) -> List[Path]:
    files: List[Path] = []
    for path in inputs:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in suffixes)
            if not found:
                raise InputError(f"{path} holds no {'/'.join(suffixes)} files")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(f"input {path} not found")
    names = {}
    for f in files:
        if f.stem in names:
            raise InputError(f"{f} and {names[f.stem]} would both be written as {f.stem}.png: "
                             f"translate them into separate --out folders")
        names[f.stem] = f
    return files


def _instance_for(label: Path, instance: Path, single: bool) -> Path:
    if instance.is_file():
        if not single:
            raise InputError(f"--instance {instance} is one file but there are several inputs: "
                             f"pass the folder holding their instance maps")
        return instance
    if not instance.is_dir():
        raise InputError(f"--instance {instance} not found")
    tries = [instance / label.name]
    if "labelIds" in label.name:
        tries.append(instance / label.name.replace("labelIds", "instanceIds"))
    for t in tries:
        if t.is_file():
            return t
    raise InputError(f"no instance map for {label.name} in {instance} (looked for "
                     f"{' or '.join(t.name for t in tries)})")


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
            print(f"\r{line}", end="" if self.done < self.total else "\n", file=sys.stderr,
                  flush=True)
        elif self.done == self.total or self.done % self.every < n:
            print(line, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from . import image_io
    from .application import load

    if args.batch < 1:
        raise ConfigError(f"--batch must be at least 1, got {args.batch}")
    gen = load(args.export, args.backend, args.device)
    try:
        rgb = gen.input_mode == "rgb"
        files = _collect(args.inputs, image_io.RGB_SUFFIXES if rgb else image_io.LABEL_SUFFIXES)
        if gen.needs_instance_map and args.instance is None:
            raise InputError("this model uses instance edges: pass --instance FILE_OR_DIR (instance"
                             "-id PNGs, e.g. Cityscapes *_instanceIds.png)")
        if not gen.needs_instance_map and args.instance is not None:
            raise InputError("this model has no instance-edge channel: drop --instance")
        insts = [None if args.instance is None else
                 _instance_for(f, args.instance, len(files) == 1) for f in files]
        print(f"{len(files)} image{'s' * (len(files) != 1)} -> {args.out} with {gen.backend} "
              f"({gen.height}x{gen.width})", flush=True)
        for note in gen.notes:
            print(f"note: {note}", flush=True)
        args.out.mkdir(parents=True, exist_ok=True)
        size = (gen.height, gen.width) if args.resize else None
        progress = _Progress(len(files))
        for start in range(0, len(files), args.batch):
            chunk = files[start:start + args.batch]
            xs = [image_io.read_rgb(f, size) if rgb else image_io.read_ids(f, size=size)
                  for f in chunk]
            ins = [image_io.read_ids(i, "instance map", size)
                   for i in insts[start:start + len(chunk)] if i is not None]
            images = _run_batch(gen, xs, ins, chunk)
            for f, x, img in zip(chunk, xs, images):
                image_io.write_png(args.out / f"{f.stem}.png", img)
                if args.side_by_side:
                    left = x if rgb else image_io.colourise(x, gen.config.one_hot_channels)
                    image_io.write_png(args.out / "side-by-side" / f"{f.stem}.png",
                                       image_io.side_by_side(left, img))
            progress.advance(len(chunk))
    finally:
        gen.close()
    return 0


def _run_batch(gen, xs, ins, chunk):
    """One call for the chunk; on a bad input, the file it came from is named."""
    import numpy as np

    ins = ins or [None] * len(xs)
    stackable = len({x.shape for x in xs}) == 1 and len({getattr(i, "shape", None)
                                                          for i in ins}) == 1
    if len(chunk) > 1 and stackable:
        try:
            return list(gen(np.stack(xs), None if ins[0] is None else np.stack(ins)))
        except InputError:
            pass  # found again below, with the file's name
    out = []
    for f, x, i in zip(chunk, xs, ins):
        try:
            out.append(gen(x, i))
        except InputError as exc:
            raise InputError(f"{f}: {exc}") from None
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except AsapDeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted; the images written so far are complete", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
