"""engines/app (asap_app), the host side of the C++ application, against the authors' pipeline.

The library is built with CMake exactly as a user would (no CUDA, no TensorRT); its test driver
writes each step's result as .npy / PNG, compared here with the authors' data loader (PIL NEAREST
resize, ToTensor()*255, 255 -> label_nc, scatter_ one-hot, get_edges) and util.tensor2im, written
out below from the authors' code. The TensorRT application itself runs in the GPU test at the end.
"""

import contextlib
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import small_config
from PIL import Image

from asap_deploy.demo import demo_generator
from asap_deploy.export import main as export_main

ROOT = Path(__file__).resolve().parents[1]
APP_SRC = ROOT / "engines" / "app"
H, W = 512, 64  # the small exports below: S = 32, H = 16 * S
LABEL_NC = 5


# ------------------------------------------------------------------------------------------------
# Build


def _configure_skip_reason(log: str):
    for needle, why in (
        ("libpng", "libpng (libpng-dev) not installed"),
        ("No CMAKE_CXX_COMPILER", "no C++ compiler installed"),
    ):
        if needle in log:
            return why
    return None


# build/asap_app: the folder .ci/run builds and ctest runs; here CMake only brings it up to date.
APP_BUILD = ROOT / "build" / "asap_app"


def _cache_source(build: Path):
    cache = build / "CMakeCache.txt"
    if not cache.is_file():
        return None
    for line in cache.read_text(errors="replace").splitlines():
        if line.startswith("CMAKE_HOME_DIRECTORY:"):
            return Path(line.split("=", 1)[1])
    return None


@pytest.fixture(scope="module")
def app() -> Path:
    if shutil.which("cmake") is None:
        pytest.skip("cmake not installed")
    source = _cache_source(APP_BUILD)
    if source is not None and source.resolve() != APP_SRC.resolve():
        shutil.rmtree(APP_BUILD)  # configured from another checkout
    cfg = subprocess.run(["cmake", "-S", str(APP_SRC), "-B", str(APP_BUILD)], capture_output=True, text=True)
    if cfg.returncode != 0:
        why = _configure_skip_reason(cfg.stdout + cfg.stderr)
        if why:
            pytest.skip(why)
        pytest.fail(cfg.stdout + cfg.stderr)
    done = subprocess.run(["cmake", "--build", str(APP_BUILD), "-j2"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "warning:" not in done.stdout + done.stderr, done.stdout + done.stderr  # -Wall -Wextra clean
    return APP_BUILD


def driver(app: Path, *args, ok: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(app / "asap_app_driver"), *map(str, args)], capture_output=True, text=True)
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_cpp_unit_tests_pass(app, tmp_path):
    proc = subprocess.run(
        [str(app / "asap_app_tests"), str(tmp_path / "scratch")], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().endswith(", 0 failed"), proc.stdout


# ------------------------------------------------------------------------------------------------
# The authors' preprocessing and postprocessing (SPADE/ASAP-Net data/base_dataset.py,
# data/pix2pix_dataset.py, models/pix2pix_model.py, util/util.py), with the Pillow of their time:
# 16-bit PNGs opened as mode I (Pillow >= 10.3 opens them as I;16).


def authors_open_resized(path: Path, w: int, h: int) -> Image.Image:
    img = Image.open(path)
    if img.mode in ("I;16", "I;16B"):
        img = img.convert("I")
    return img.resize((w, h), Image.NEAREST)


def authors_to_tensor(img: Image.Image) -> torch.Tensor:
    """torchvision.transforms.ToTensor for the modes label maps come in."""
    if img.mode == "I":
        return torch.from_numpy(np.array(img, np.int32))[None]
    t = torch.from_numpy(np.array(img, np.uint8))[None]
    if img.mode == "1":
        t = 255 * t
    return t.float().div(255)


def authors_label(path: Path, label_nc: int) -> torch.Tensor:
    t = authors_to_tensor(authors_open_resized(path, W, H)) * 255.0
    t[t == 255] = label_nc
    return t


def authors_instance(path: Path) -> torch.Tensor:
    img = authors_open_resized(path, W, H)
    t = authors_to_tensor(img)
    return (t * 255).long() if img.mode == "L" else t


def authors_get_edges(t: torch.Tensor) -> torch.Tensor:
    edge = torch.zeros(t.size(), dtype=torch.uint8)
    edge[:, :, :, 1:] = edge[:, :, :, 1:] | (t[:, :, :, 1:] != t[:, :, :, :-1])
    edge[:, :, :, :-1] = edge[:, :, :, :-1] | (t[:, :, :, 1:] != t[:, :, :, :-1])
    edge[:, :, 1:, :] = edge[:, :, 1:, :] | (t[:, :, 1:, :] != t[:, :, :-1, :])
    edge[:, :, :-1, :] = edge[:, :, :-1, :] | (t[:, :, 1:, :] != t[:, :, :-1, :])
    return edge.float()


def authors_input(label: torch.Tensor, instance, label_nc: int, dontcare: bool) -> np.ndarray:
    label_map = label[None].long()
    nc = label_nc + 1 if dontcare else label_nc
    semantics = torch.zeros(1, nc, H, W).scatter_(1, label_map, 1.0)
    if instance is not None:
        semantics = torch.cat((semantics, authors_get_edges(instance[None])), dim=1)
    return semantics.numpy()


def authors_tensor2im(chw: np.ndarray) -> np.ndarray:
    x = (np.transpose(chw.astype(np.float32), (1, 2, 0)) + 1) / 2.0 * 255.0
    x = np.clip(x, 0, 255)
    if x.shape[2] == 1:
        x = x[:, :, 0]
    with np.errstate(invalid="ignore"):  # NaN: undefined in numpy, compared apart
        return x.astype(np.uint8)


# ------------------------------------------------------------------------------------------------
# Exports (real manifests) and PNGs


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """One checkpoint (7 input channels), exported three ways."""
    d = tmp_path_factory.mktemp("exports")
    ckpt = d / "latest_net_G.pth"
    torch.save(
        OrderedDict(
            demo_generator(
                small_config(hr_width=64, contain_dontcare_label=True, instance_edge=True)
            ).state_dict()
        ),
        ckpt,
    )
    edges = ["--label-nc", str(LABEL_NC), "--contain-dontcare-label", "--instance-edge"]
    runs = {
        "one_hot": edges,
        "labels": edges + ["--input", "labels"],
        "plain": ["--label-nc", "7", "--no-contain-dontcare-label", "--no-instance-edge"],
    }
    out = {}
    for name, extra in runs.items():
        with contextlib.redirect_stdout(io.StringIO()):
            rc = export_main([str(ckpt), "--width", str(W), "--out", str(d / name), "--no-parity"] + extra)
        assert rc == 0
        out[name] = d / name / "manifest.json"
    return out


def blocky(rng, h, w, block, values) -> np.ndarray:
    small = rng.choice(values, size=(-(-h // block), -(-w // block)))
    a = np.kron(small, np.ones((block, block), dtype=small.dtype))[:h, :w]
    noise = rng.random((h, w)) < 0.02  # isolated pixels: the resize rule decides which survive
    a[noise] = rng.choice(values, size=int(noise.sum()))
    return np.ascontiguousarray(a)


CLASS_IDS = np.array(list(range(LABEL_NC + 1)) + [255], dtype=np.uint8)  # 5 = don't care, 255 too


def save_label(path: Path, kind: str, size, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    w, h = size
    if kind == "gray8":
        Image.fromarray(blocky(rng, h, w, 8, CLASS_IDS), "L").save(path)
    elif kind == "palette4":
        img = Image.fromarray(blocky(rng, h, w, 8, CLASS_IDS[:-1]), "P")
        img.putpalette([v for i in range(16) for v in (i * 16, 255 - i * 16, i * 7)])
        img.save(path, bits=4)
    elif kind == "bilevel":
        Image.fromarray(blocky(rng, h, w, 8, np.array([0, 255], np.uint8)), "L").convert("1").save(path)
    else:
        raise ValueError(kind)
    return path


def save_instance(path: Path, kind: str, size, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    w, h = size
    if kind == "i16":  # Cityscapes style: class * 1000 + instance, beyond int16
        ids = np.array([0, 7, 26000, 26001, 33000, 33001, 65535], dtype=np.uint16)
        Image.fromarray(blocky(rng, h, w, 4, ids)).save(path)
    else:
        Image.fromarray(blocky(rng, h, w, 4, np.arange(0, 250, 7, dtype=np.uint8)), "L").save(path)
    return path


def load_npy(path: Path) -> np.ndarray:
    return np.load(path, allow_pickle=False)


# ------------------------------------------------------------------------------------------------
# Preprocessing


@pytest.mark.parametrize(
    "label_kind,label_size,inst_kind,inst_size",
    [
        ("gray8", (W, H), "i16", (W, H)),  # the model's size: no resize
        ("gray8", (77, 300), "i16", (131, 1000)),  # up and down, non-integer ratios
        ("palette4", (200, 1024), "gray8", (33, 257)),
        ("bilevel", (96, 700), "i16", (64, 512)),
    ],
)
def test_one_hot_input_matches_authors(app, exports, tmp_path, label_kind, label_size, inst_kind, inst_size):
    label = save_label(tmp_path / "label.png", label_kind, label_size, seed=1)
    inst = save_instance(tmp_path / "inst.png", inst_kind, inst_size, seed=2)
    proc = driver(app, "inputs", exports["one_hot"], "asapnet_plugin.onnx", label, inst, tmp_path)
    got = load_npy(tmp_path / "label.npy")
    want = authors_input(authors_label(label, LABEL_NC), authors_instance(inst), LABEL_NC, True)
    assert got.dtype == np.float32 and got.shape == (1, LABEL_NC + 2, H, W)
    assert np.array_equal(got, want)
    assert want[:, LABEL_NC].any() and want[:, -1].any()  # don't care and edges both exercised
    resized = (label_size != (W, H)) + (inst_size != (W, H))
    assert proc.stderr.count("resized to the model's 64x512") == resized


def test_label_ids_inputs_feed_the_graph_like_the_authors_one_hot(app, exports, tmp_path):
    """--input labels exports: raw ids in, and the graph's output equals the one-hot graph's on
    the authors' one-hot input (same checkpoint)."""
    import onnxruntime as ort

    label = save_label(tmp_path / "label.png", "gray8", (100, 333), seed=3)
    inst = save_instance(tmp_path / "inst.png", "i16", (100, 333), seed=4)
    driver(app, "inputs", exports["labels"], "asapnet.onnx", label, inst, tmp_path)
    label_map, instance_map = load_npy(tmp_path / "label_map.npy"), load_npy(tmp_path / "instance_map.npy")
    assert label_map.dtype == np.int32 and label_map.shape == (1, 1, H, W)
    raw = np.array(authors_open_resized(label, W, H), np.int32)
    assert np.array_equal(label_map[0, 0], raw) and (raw == 255).any()
    assert np.array_equal(instance_map[0, 0], np.array(authors_open_resized(inst, W, H), np.int32))

    one_hot = authors_input(authors_label(label, LABEL_NC), authors_instance(inst), LABEL_NC, True)
    ids_graph = ort.InferenceSession(
        str(exports["labels"].parent / "asapnet.onnx"), providers=["CPUExecutionProvider"]
    )
    hot_graph = ort.InferenceSession(
        str(exports["one_hot"].parent / "asapnet.onnx"), providers=["CPUExecutionProvider"]
    )
    a = ids_graph.run(["image"], {"label_map": label_map, "instance_map": instance_map})[0]
    b = hot_graph.run(["image"], {"label": one_hot})[0]
    assert np.abs(a - b).max() <= 1e-5


def test_model_without_dont_care_or_edges(app, exports, tmp_path):
    label = tmp_path / "label.png"
    rng = np.random.default_rng(5)
    Image.fromarray(blocky(rng, H, W, 8, np.array([0, 3, 6, 255], np.uint8)), "L").save(label)
    inst = save_instance(tmp_path / "inst.png", "i16", (W, H), seed=6)
    proc = driver(app, "inputs", exports["plain"], "asapnet.onnx", label, inst, tmp_path)
    assert "inst.png: ignored, this model does not use instance edges" in proc.stderr
    got = load_npy(tmp_path / "label.npy")
    ids = np.array(Image.open(label))
    assert got.shape == (1, 7, H, W)
    assert np.array_equal(got.sum(axis=1)[0], (ids != 255).astype(np.float32))  # 255: all zero
    assert np.array_equal(got[0].argmax(axis=0)[ids != 255], ids[ids != 255])


def closed_form(n_in: int, n_out: int) -> list:
    return [int(n_in / n_out * (x + 0.5)) for x in range(n_out)]


@pytest.mark.parametrize("mode", ["L", "P", "I;16"])
def test_resize_is_pillows_nearest(app, tmp_path, mode):
    # 64 -> 96 and 24 -> 100: ratios where Pillow's accumulated position and the closed form
    # floor((x + 0.5) * in / out) pick different source pixels
    src_w, src_h, out_w, out_h = 64, 24, 96, 100
    assert closed_form(src_w, out_w) != [
        int(v)
        for v in np.asarray(
            Image.fromarray(np.arange(src_w, dtype=np.int32)[None]).resize((out_w, 1), Image.NEAREST)
        )[0]
    ]
    rng = np.random.default_rng(7)
    if mode == "I;16":
        a = rng.integers(0, 65536, (src_h, src_w)).astype(np.uint16)
        Image.fromarray(a).save(tmp_path / "m.png")
        want = np.array(Image.open(tmp_path / "m.png").convert("I").resize((out_w, out_h), Image.NEAREST))
        kind = "instance"
    else:
        a = rng.integers(0, 256, (src_h, src_w)).astype(np.uint8)
        Image.fromarray(a, mode).save(tmp_path / "m.png")
        want = np.array(Image.open(tmp_path / "m.png").resize((out_w, out_h), Image.NEAREST))
        kind = "label"
    driver(app, "resize", kind, tmp_path / "m.png", out_w, out_h, tmp_path / "r.npy")
    assert np.array_equal(load_npy(tmp_path / "r.npy"), want.astype(np.int32))


# ------------------------------------------------------------------------------------------------
# Postprocessing

SPECIAL = np.array(
    [
        -1,
        1,
        0,
        -0.0,
        2,
        -2,
        1e-8,
        -1e-8,
        np.inf,
        -np.inf,
        np.nextafter(np.float32(1), np.float32(0)),
        np.float32(1) - np.float32(2**-22),
        0.00392157,
        0.00784314,
        -0.99215686,
        0.5,
        -0.5,
    ],
    np.float32,
)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("channels", [3, 1])
def test_image_bytes_are_the_authors(app, tmp_path, dtype, channels):
    rng = np.random.default_rng(8)
    h, w = 37, 53
    x = rng.uniform(-1.1, 1.1, (channels, h, w)).astype(np.float32)
    # every k/255 level boundary (where truncation decides) and its float32 neighbours
    levels = (np.arange(256, dtype=np.float32) / np.float32(255)) * 2 - 1
    near = np.concatenate([levels, np.nextafter(levels, np.float32(2)), np.nextafter(levels, np.float32(-2))])
    flat = x.reshape(-1)
    flat[: near.size] = near
    flat[near.size : near.size + SPECIAL.size] = SPECIAL
    flat[-1] = np.nan
    x = x.astype(dtype)
    (tmp_path / "x.raw").write_bytes(x.tobytes())
    proc = driver(app, "image", dtype, channels, h, w, tmp_path / "x.raw", tmp_path / "x.png")
    assert proc.stdout.strip() == "nan 1"
    got = np.array(Image.open(tmp_path / "x.png"))
    want = authors_tensor2im(torch.from_numpy(x).float().numpy())
    nan_pixel = np.isnan(x.astype(np.float32)).any(axis=0)
    assert got.shape == want.shape and got.dtype == np.uint8
    assert np.array_equal(got[~nan_pixel], want[~nan_pixel])
    assert (got[nan_pixel] == 0).all() if channels == 1 else got.reshape(-1)[-1] == 0


def test_float_to_half_matches_numpy(app, tmp_path):
    rng = np.random.default_rng(9)
    bits = rng.integers(0, 2**32, 400_000, dtype=np.uint64).astype(np.uint32)
    # dense around the half range: subnormals, ties, overflow threshold
    mags = np.concatenate(
        [
            np.arange(0x33000000, 0x33800000, 97),
            np.arange(0x38000000, 0x39000000, 31),
            np.arange(0x477FE000, 0x47800100, 1),
        ]
    ).astype(np.uint32)
    x = np.concatenate([bits, mags, mags | 0x80000000]).view(np.float32)
    (tmp_path / "f.raw").write_bytes(x.tobytes())
    driver(app, "half", tmp_path / "f.raw", tmp_path / "h.raw")
    got = np.frombuffer((tmp_path / "h.raw").read_bytes(), np.float16)
    with np.errstate(over="ignore"):
        want = x.astype(np.float16)
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan)
    assert np.array_equal(got[~nan].view(np.uint16), want[~nan].view(np.uint16))


# ------------------------------------------------------------------------------------------------
# Engine <-> export matching on a real manifest


def test_engine_matching_on_a_real_manifest(app, exports, tmp_path):
    man = exports["one_hot"]
    files = {f["file"]: f for f in json.loads(man.read_text())["files"]}
    label = f"label:in:float32:-1x{LABEL_NC + 2}x{H}x{W}"
    image = f"image:out:float32:-1x3x{H}x{W}"
    sha = files["asapnet_plugin.onnx"]["sha256"]
    assert driver(app, "match", man, sha, label, image).stdout.strip() == "asapnet_plugin.onnx"
    assert driver(app, "match", man, "-", label, image).stdout.strip() == "asapnet.onnx"
    half = f"label:in:float16:-1x{LABEL_NC + 2}x{H}x{W}"
    for args, part in [
        ((sha, half, image), "input label is float16 in the engine, float32 in asapnet_plugin.onnx"),
        ((files["mlp.onnx"]["sha256"], label, image), "built from mlp.onnx, one stage of the generator"),
        ((hashlib.sha256(b"other").hexdigest(), label, image), "not part of this export"),
        (("-", f"label:in:float32:-1x9x{H}x{W}", image), "matches no generator graph"),
    ]:
        proc = driver(app, "match", man, *args, ok=False)
        assert proc.returncode == 2 and part in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1


# ------------------------------------------------------------------------------------------------
# Bad input: one line "error: ...", exit code 2, nothing written


def _bad_png(tmp_path: Path, kind: str) -> Path:
    p = tmp_path / f"{kind}.png"
    if kind == "text":
        p.write_text("this is not a PNG")
    elif kind == "truncated":
        save_label(p, "gray8", (W, H), seed=10)
        p.write_bytes(p.read_bytes()[:300])
    elif kind == "rgb":
        Image.new("RGB", (W, H), (1, 2, 3)).save(p)
    elif kind == "gray_alpha":
        Image.new("LA", (W, H), (1, 255)).save(p)
    elif kind == "sixteen":
        Image.fromarray(np.ones((H, W), np.uint16)).save(p)
    elif kind == "bad_id":
        a = np.zeros((H, W), np.uint8)
        a[7, 3] = 9
        a[8, 8] = 40
        Image.fromarray(a, "L").save(p)
    return p


@pytest.mark.parametrize(
    "label_kind,inst_kind,part",
    [
        ("text", "ok", "text.png: not a PNG file"),
        ("truncated", "ok", "truncated.png: damaged or truncated PNG (libpng: "),
        ("rgb", "ok", "rgb.png is 8-bit RGB; a label map holds one class id per pixel"),
        ("gray_alpha", "ok", "gray_alpha.png is 8-bit grayscale+alpha"),
        ("sixteen", "ok", "sixteen.png is 16-bit grayscale; a label map is an 8-bit"),
        ("bad_id", "ok", "class id 9 at pixel (x 3, y 7) and 1 more pixels is not a class of this model"),
        ("missing", "ok", "missing.png: cannot open (No such file or directory)"),
        ("ok", "none", "this model uses instance edges"),
        ("ok", "rgb", "rgb.png is 8-bit RGB; an instance map holds one instance id per pixel"),
    ],
)
def test_bad_inputs_fail_with_one_line(app, exports, tmp_path, label_kind, inst_kind, part):
    label = (
        save_label(tmp_path / "ok.png", "gray8", (W, H), seed=11)
        if label_kind == "ok"
        else tmp_path / "missing.png"
        if label_kind == "missing"
        else _bad_png(tmp_path, label_kind)
    )
    inst = {
        "ok": save_instance(tmp_path / "inst.png", "i16", (W, H), seed=12),
        "none": "-",
        "rgb": _bad_png(tmp_path, "rgb"),
    }[inst_kind]
    out = tmp_path / "out"
    out.mkdir()
    proc = driver(app, "inputs", exports["one_hot"], "asapnet.onnx", label, inst, out, ok=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert part in lines[0], lines[0]
    assert not list(out.iterdir())


@pytest.mark.parametrize(
    "edit,part",
    [
        (lambda m: m["config"].pop("label_nc"), "config.label_nc is missing"),
        (lambda m: m.update(height="512"), "height must be an integer, not a string"),
        (lambda m: m.update(input_mode="rgb"), 'input_mode "rgb" is not supported by this app'),
        (
            lambda m: m["files"][0]["inputs"][0].update(dtype="bfloat16"),
            'unsupported element type "bfloat16"',
        ),
    ],
)
def test_bad_manifests_fail_with_one_line(app, exports, tmp_path, edit, part):
    man = json.loads(exports["one_hot"].read_text())
    edit(man)
    bad = tmp_path / "manifest.json"
    bad.write_text(json.dumps(man))
    label = save_label(tmp_path / "l.png", "gray8", (W, H), seed=13)
    proc = driver(app, "inputs", bad, "asapnet.onnx", label, "-", tmp_path, ok=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and part in proc.stderr, proc.stderr
    broken = tmp_path / "broken.json"
    broken.write_text(exports["one_hot"].read_text()[:500])
    proc = driver(app, "inputs", broken, "asapnet.onnx", label, "-", tmp_path, ok=False)
    assert proc.returncode == 2 and "broken.json: invalid JSON at line" in proc.stderr


def test_written_png_honours_umask_and_leaves_no_temporaries(app, tmp_path):
    x = np.zeros((3, 4, 5), np.float32)
    (tmp_path / "x.raw").write_bytes(x.tobytes())
    old = os.umask(0o027)
    try:
        driver(app, "image", "float32", 3, 4, 5, tmp_path / "x.raw", tmp_path / "new" / "img.png")
    finally:
        os.umask(old)
    assert (tmp_path / "new" / "img.png").stat().st_mode & 0o777 == 0o640
    assert [p.name for p in (tmp_path / "new").iterdir()] == ["img.png"]


# ------------------------------------------------------------------------------------------------
# The whole engines/ CMake project: the app is part of it and says when the runner is skipped


@pytest.mark.skipif(
    shutil.which("cmake") is None or shutil.which("nvcc") is None,
    reason="needs cmake and nvcc (engines/CMakeLists.txt is a CUDA project)",
)
def test_engines_cmake_builds_the_app_and_explains_the_runner(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("TensorRT_ROOT", "TENSORRT_ROOT")}
    proc = subprocess.run(
        ["cmake", "-S", str(ROOT / "engines"), "-B", str(tmp_path)], capture_output=True, text=True, env=env
    )
    if proc.returncode != 0 and _configure_skip_reason(proc.stdout + proc.stderr):
        pytest.skip(_configure_skip_reason(proc.stdout + proc.stderr))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    if "TensorRT plugin:" in proc.stdout:
        pytest.skip("TensorRT was found on this machine")
    assert "asap_trt_run (C++ application) skipped: it needs TensorRT (-DTensorRT_ROOT=" in proc.stdout
    assert (tmp_path / "app" / "Makefile").is_file() or (tmp_path / "build.ninja").is_file()


# ------------------------------------------------------------------------------------------------
# The TensorRT application on a GPU: label PNG -> engine -> PNG equals the authors' bytes of the
# same engine's output, computed in Python. Needs a GPU, TensorRT's Python module, TensorRT_ROOT.


def _gpu_ready() -> str:
    if not torch.cuda.is_available():
        return "needs an NVIDIA GPU (CUDA)"
    if not os.environ.get("TensorRT_ROOT"):
        return "needs TensorRT_ROOT (a TensorRT install with include/ and lib/) to build asap_trt_run"
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return "needs the tensorrt Python module"
    return ""


@pytest.mark.gpu
@pytest.mark.skipif(bool(_gpu_ready()), reason=_gpu_ready() or "ready")
def test_trt_application_end_to_end(exports, tmp_path):
    from asap_deploy.engine.loader import load_engine

    major, minor = torch.cuda.get_device_capability()
    build = tmp_path / "cmake"
    subprocess.run(
        [
            "cmake",
            "-S",
            str(ROOT / "engines"),
            "-B",
            str(build),
            f"-DTensorRT_ROOT={os.environ['TensorRT_ROOT']}",
            f"-DCMAKE_CUDA_ARCHITECTURES={major}{minor}",
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        ["cmake", "--build", str(build), "-j", "--target", "asap_trt_run", "asap_trt_plugin"],
        check=True,
        capture_output=True,
    )
    export_dir = exports["one_hot"].parent
    onnx = export_dir / "asapnet_plugin.onnx"
    plugin = build / "libasap_trt_plugin.so"
    engine = tmp_path / "asapnet_plugin.plan"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "asap_deploy.build",
            str(onnx),
            "--out",
            str(engine),
            "--plugin",
            str(plugin),
            "--no-progress",
        ],
        check=True,
        capture_output=True,
    )
    label = save_label(tmp_path / "label.png", "gray8", (128, 1024), seed=14)
    inst = save_instance(tmp_path / "inst.png", "i16", (128, 1024), seed=15)
    out = tmp_path / "image.png"
    proc = subprocess.run(
        [
            str(build / "asap_trt_run"),
            str(engine),
            "--manifest",
            str(exports["one_hot"]),
            "--input",
            str(label),
            "--instance",
            str(inst),
            "--output",
            str(out),
            "--plugin",
            str(plugin),
            "--iterations",
            "20",
            "--warmup",
            "5",
            "--cuda-graph",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for line in ("Throughput:", "H2D Latency:", "GPU Compute Time:", "D2H Latency:", "asapnet_plugin.onnx"):
        assert line in proc.stdout, proc.stdout

    # the same engine in Python on the authors' input: identical bytes
    trt_engine, _, _ = load_engine(engine, plugin=str(plugin))
    ctx = trt_engine.create_execution_context()
    x = torch.from_numpy(
        authors_input(authors_label(label, LABEL_NC), authors_instance(inst), LABEL_NC, True)
    ).cuda()
    y = torch.empty(1, 3, H, W, device="cuda")
    ctx.set_input_shape("label", tuple(x.shape))
    ctx.set_tensor_address("label", x.data_ptr())
    ctx.set_tensor_address("image", y.data_ptr())
    stream = torch.cuda.current_stream()
    assert ctx.execute_async_v3(stream.cuda_stream)
    stream.synchronize()
    assert np.array_equal(np.array(Image.open(out)), authors_tensor2im(y[0].cpu().numpy()))

    # one-line errors: no plugin, wrong manifest
    bad = subprocess.run(
        [
            str(build / "asap_trt_run"),
            str(engine),
            "--manifest",
            str(exports["plain"]),
            "--input",
            str(label),
            "--output",
            str(tmp_path / "x.png"),
        ],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and not (tmp_path / "x.png").exists()
