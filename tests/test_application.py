"""Label map in, image out: ``asap_deploy.load`` and ``python -m asap_deploy.translate`` on
checkpoints whose outputs are known (the independent oracle of the authors' generator, fed as the
authors' pix2pix_model feeds it, saved as their util.tensor2im saves), and every bad input."""

import json
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import export_for_test, small_config
from PIL import Image
from reference_asapnet import reference_generator

import asap_deploy
from asap_deploy.demo import demo_generator
from asap_deploy.errors import ConfigError, InputError, InputPathError
from asap_deploy.translate import main as translate_main

# name: (config, opt.txt lines); widths small, structure the paper's
MODELS = {
    "city": (small_config(hr_width=64), {"label_nc": 5, "no_instance_edge": False, "lr_instance": True}),
    "facades": (
        small_config(
            hr_width=64,
            instance_edge=False,
            lr_instance=False,
            padding="reflect",
            contain_dontcare_label=True,
        ),
        {"label_nc": 5, "no_instance_edge": True, "contain_dontcare_label": True, "reflection_pad": True},
    ),
    "rgb": (
        small_config(hr_width=64, label_nc=3, no_one_hot=True, instance_edge=False, lr_instance=False),
        {"label_nc": 3, "no_one_hot": True, "no_instance_edge": True},
    ),
}
WIDTH = 64


def _write_checkpoint(root: Path, name: str):
    cfg, opts = MODELS[name]
    gen = demo_generator(cfg, seed=7)
    ckpt = root / name / "latest_net_G.pth"
    ckpt.parent.mkdir(parents=True)
    torch.save(OrderedDict(gen.state_dict()), ckpt)
    (ckpt.parent / "opt.txt").write_text(
        "----------------- Options ---------------\n"
        + "".join(f"{k:>25}: {v}\n" for k, v in opts.items())
        + "----------------- End -------------------\n"
    )
    return ckpt, gen


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """Each model exported as a user would (opt.txt beside the checkpoint), no engine."""
    root = tmp_path_factory.mktemp("apps")
    out = {}
    for name in MODELS:
        ckpt, gen = _write_checkpoint(root, name)
        folder = root / f"export-{name}"
        export_for_test(ckpt, folder, width=WIDTH)
        out[name] = (folder, gen)
    return out


# -- the authors' pipeline, written out in their style ------------------------------------------
def authors_input(cfg, ids=None, inst=None, rgb=None):
    """pix2pix_dataset + pix2pix_model.preprocess_input for a batch."""
    if cfg.no_one_hot:
        x = torch.from_numpy(rgb).permute(0, 3, 1, 2).float().div(255)
        sem = (x - 0.5) / 0.5
    else:
        label = torch.from_numpy(ids.astype(np.int64))[:, None]
        label[label == 255] = cfg.label_nc
        nc = cfg.label_nc + 1 if cfg.contain_dontcare_label else cfg.label_nc
        sem = torch.zeros(label.shape[0], nc, *label.shape[2:]).scatter_(1, label, 1.0)
    if cfg.instance_edge:
        t = torch.from_numpy(inst)[:, None]
        edge = torch.zeros(t.shape, dtype=torch.bool)
        edge[:, :, :, 1:] |= t[:, :, :, 1:] != t[:, :, :, :-1]
        edge[:, :, :, :-1] |= t[:, :, :, 1:] != t[:, :, :, :-1]
        edge[:, :, 1:, :] |= t[:, :, 1:, :] != t[:, :, :-1, :]
        edge[:, :, :-1, :] |= t[:, :, 1:, :] != t[:, :, :-1, :]
        sem = torch.cat([sem, edge.float()], 1)
    return sem


def authors_saved(y: torch.Tensor) -> np.ndarray:
    """util.tensor2im: float32 numpy, (y + 1) / 2 * 255, clip, astype(uint8); HWC."""
    a = y.detach().cpu().float().numpy()
    return np.clip((np.transpose(a, (0, 2, 3, 1)) + 1) / 2.0 * 255.0, 0, 255).astype(np.uint8)


def known_output(gen, **inputs) -> np.ndarray:
    cfg = gen.config
    ref, _ = reference_generator(
        gen.state_dict(),
        authors_input(cfg, **inputs),
        padding=cfg.padding,
        lr_instance=cfg.lr_instance,
        strided=cfg.num_strided_convs,
        hr_width=cfg.hr_width,
        hr_depth=cfg.hr_depth,
        output_nc=cfg.output_nc,
    )
    return authors_saved(ref)


def scene(cfg, batch=2, seed=0):
    rng = np.random.default_rng(seed)
    h = cfg.height
    if cfg.no_one_hot:
        return {"rgb": rng.integers(0, 256, (batch, h, WIDTH, 3), dtype=np.uint8)}
    ids = rng.integers(0, cfg.one_hot_channels, (batch, h // 8, WIDTH // 8)).repeat(8, 1).repeat(8, 2)
    ids = ids.astype(np.uint8)
    if cfg.contain_dontcare_label:  # the authors map 255 to the don't-care channel
        ids[:, :8, :8] = 255
    out = {"ids": ids}
    if cfg.instance_edge:
        out["inst"] = rng.integers(0, 3000, (batch, h // 4, WIDTH // 4)).repeat(4, 1).repeat(4, 2)
    return out


def call(g, s):
    x = s.get("rgb", s.get("ids"))
    return g(x, instance_map=s.get("inst"))


@pytest.mark.parametrize("name", list(MODELS))
def test_images_match_the_authors_saved_output(exports, name):
    folder, gen = exports[name]
    s = scene(gen.config)
    want = known_output(gen, **s)
    with asap_deploy.load(folder, backend="torch") as g:  # the model the export came from
        assert np.array_equal(call(g, s), want)
    with asap_deploy.load(folder) as g:  # auto: ONNX Runtime on this CPU
        assert g.backend.startswith("ort-") and g.input_mode == ("rgb" if name == "rgb" else "labels")
        got = call(g, s)
    assert got.shape == (2, gen.config.height, WIDTH, 3) and got.dtype == np.uint8
    # FP32 graph vs the oracle: at most one level, on a handful of pixels at a truncation edge
    diff = np.abs(got.astype(int) - want)
    assert diff.max() <= 1 and np.mean(diff > 0) < 1e-3


def test_single_image_batches_and_torch_tensors(exports):
    folder, gen = exports["city"]
    s = scene(gen.config, batch=3, seed=1)
    with asap_deploy.load(folder) as g:
        batch = call(g, s)
        one = g(s["ids"][1], instance_map=s["inst"][1])
        assert one.shape == (gen.config.height, WIDTH, 3) and np.array_equal(one, batch[1])
        t = g(torch.from_numpy(s["ids"].astype(np.int64)), instance_map=torch.from_numpy(s["inst"]))
        assert isinstance(t, torch.Tensor) and t.dtype == torch.uint8
        assert np.array_equal(t.numpy(), batch)
        # a PIL image (mode L) is read as its ids
        pil = g(Image.fromarray(s["ids"][0]), instance_map=s["inst"][0])
        assert np.array_equal(pil, batch[0])


def test_one_hot_and_label_map_exports_agree(exports, tmp_path):
    """The default export takes the one-hot tensor, --input labels the ids: same images."""
    folder, gen = exports["city"]
    ckpt = Path(json.loads((folder / "manifest.json").read_text())["source"]["checkpoint"])
    labels = tmp_path / "labels"
    export_for_test(ckpt, labels, "--input", "labels", width=WIDTH)
    s = scene(gen.config, seed=2)
    with asap_deploy.load(folder) as a, asap_deploy.load(labels) as b:
        assert json.loads((labels / "manifest.json").read_text())["input_mode"] == "labels"
        assert np.array_equal(call(a, s), call(b, s))


BAD = [
    # (model, what is passed, words the one-line error must hold)
    ("city", dict(ids="float"), "integer class ids"),
    ("city", dict(ids="size"), "runs at 512 x 64"),
    ("city", dict(ids="id"), "class id 9"),
    ("city", dict(ids="negative"), "class id -1"),
    ("city", dict(ids="4d"), "drop the channel axis"),
    ("city", dict(ids="rgb"), "colour image"),
    ("city", dict(inst=None), "pass instance_map"),
    ("city", dict(inst="size"), "instance map is 512 x 60"),
    ("city", dict(inst="float"), "integer instance ids"),
    ("city", dict(ids="batch", inst="ok"), "instance map is"),
    ("facades", dict(inst="extra"), "drop instance_map"),
    ("facades", dict(ids="id6"), "class id 6"),  # 0..4 + don't care 5 + 255
    ("rgb", dict(rgb="float"), "must be uint8"),
    ("rgb", dict(rgb="rgba"), "alpha"),
    ("rgb", dict(rgb="ids"), "H x W x 3"),
    ("rgb", dict(rgb="size"), "runs at 512 x 64"),
    ("city", dict(ids="object"), "numpy array or torch tensor"),
    ("city", dict(ids="empty", inst="empty"), "empty batch"),
]


def _bad_input(cfg, ids=None, inst="ok", rgb=None):
    h = cfg.height
    x = np.zeros((h, WIDTH), np.uint8)
    i = np.zeros((h, WIDTH), np.int32) if cfg.instance_edge else None
    if rgb is not None:
        x = {
            "float": np.zeros((h, WIDTH, 3), np.float32),
            "rgba": np.zeros((h, WIDTH, 4), np.uint8),
            "ids": np.zeros((h, WIDTH), np.uint8),
            "size": np.zeros((h, 32, 3), np.uint8),
        }[rgb]
    elif ids == "float":
        x = x.astype(np.float32)
    elif ids == "size":
        x = np.zeros((h // 2, WIDTH), np.uint8)
    elif ids == "id":
        x[100:103, 10] = 9
    elif ids == "negative":
        x = x.astype(np.int64)
        x[5, 5] = -1
    elif ids == "4d":
        x = x[None, None]
    elif ids == "rgb":
        x = np.zeros((h, WIDTH, 3), np.uint8)
    elif ids == "batch":
        x = np.zeros((2, h, WIDTH), np.uint8)
    elif ids == "id6":
        x[0, 0] = 6
    elif ids == "object":
        x = object()
    elif ids == "empty":
        x = np.zeros((0, h, WIDTH), np.uint8)
    if inst is None:
        i = None
    elif inst == "size":
        i = np.zeros((h, 60), np.int32)
    elif inst == "float":
        i = np.zeros((h, WIDTH), np.float32)
    elif inst == "extra":
        i = np.zeros((h, WIDTH), np.int32)
    elif inst == "empty":
        i = np.zeros((0, h, WIDTH), np.int32)
    return x, i


@pytest.mark.parametrize("name,bad,words", BAD)
def test_bad_inputs_are_one_clear_line(exports, name, bad, words):
    folder, gen = exports[name]
    x, inst = _bad_input(gen.config, **bad)
    with asap_deploy.load(folder) as g, pytest.raises(InputError) as e:
        g(x, instance_map=inst)
    msg = str(e.value)
    assert words in msg and "\n" not in msg, msg


def test_dont_care_and_top_class_are_valid(exports):
    folder, gen = exports["facades"]  # contain_dontcare_label: ids 0..5 and 255
    x = np.zeros((gen.config.height, WIDTH), np.uint8)
    x[0, :3] = [5, 255, 4]
    with asap_deploy.load(folder) as g:
        assert g(x).shape == (gen.config.height, WIDTH, 3)


def test_load_errors(exports, tmp_path):
    folder, _ = exports["city"]
    for kwargs, words in [
        (dict(model=tmp_path / "none"), "not found"),
        (dict(model=folder, backend="tensorflow"), "backend must be one of"),
        (dict(model=folder, device="tpu"), "device must be"),
        (dict(model=folder / "asapnet.onnx", backend="torch"), "ONNX file"),
    ]:
        with pytest.raises(ConfigError, match=words):
            asap_deploy.load(**kwargs)
    with pytest.raises(InputPathError, match="no manifest.json"):  # a folder, not an export
        asap_deploy.load(tmp_path)
    # an explicit TensorRT backend: the missing module is said first, then the missing engine
    from asap_deploy.engine.trt_module import import_tensorrt
    from asap_deploy.errors import MissingDependencyError

    for module in ("tensorrt", "tensorrt_rtx"):
        try:
            import_tensorrt(module)
        except MissingDependencyError:
            with pytest.raises(MissingDependencyError, match="not installed"):
                asap_deploy.load(folder, backend=module)
        else:
            with pytest.raises(ConfigError, match=f"has no {module} engine .* --module {module}"):
                asap_deploy.load(folder, backend=module)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            asap_deploy.load(folder, device="cuda")
    g = asap_deploy.load(folder / "asapnet.onnx")  # a graph inside the export
    g.close()
    with pytest.raises(ConfigError, match="closed"):
        g(np.zeros((512, WIDTH), np.uint8), instance_map=np.zeros((512, WIDTH), np.int32))


def test_import_is_light():
    code = (
        "import sys, asap_deploy; heavy = {'torch', 'onnxruntime', 'onnx', 'tensorrt'} & "
        "set(sys.modules); assert not heavy, heavy; assert callable(asap_deploy.load)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- the command line --------------------------------------------------------------------------
def _pngs(root: Path, cfg, s):
    """Write the scene as the authors' dataset stores it."""
    lab, ins = root / "labels", root / "instances"
    lab.mkdir()
    ins.mkdir()
    n = len(s.get("rgb", s.get("ids")))
    for k in range(n):
        name = f"frankfurt_{k:06d}_gtFine"
        if cfg.no_one_hot:
            Image.fromarray(s["rgb"][k]).save(lab / f"{name}_leftImg8bit.png")
            continue
        Image.fromarray(s["ids"][k], "L").save(lab / f"{name}_labelIds.png")
        if "inst" in s:
            Image.fromarray(s["inst"][k].astype(np.uint16)).save(ins / f"{name}_instanceIds.png")
    return lab, ins


@pytest.mark.parametrize("name", ["city", "rgb"])
def test_cli_writes_the_bytes_of_the_api(exports, tmp_path, name, capsys):
    folder, gen = exports[name]
    s = scene(gen.config, batch=3, seed=4)
    lab, ins = _pngs(tmp_path, gen.config, s)
    out = tmp_path / "out"
    argv = [str(folder), str(lab), "--out", str(out), "--batch", "2", "--side-by-side"]
    if "inst" in s:
        argv += ["--instance", str(ins)]
    assert translate_main(argv) == 0, capsys.readouterr().err
    written = sorted(out.glob("*.png"))
    assert [p.name for p in written] == sorted(p.name for p in lab.glob("*.png"))
    from asap_deploy.image_io import png_bytes

    with asap_deploy.load(folder) as g:
        api = call(g, s)
    for k, p in enumerate(written):
        assert p.read_bytes() == png_bytes(api[k])  # identical files
        assert np.array_equal(np.asarray(Image.open(p)), api[k])
        pair = Image.open(out / "side-by-side" / p.name)
        assert pair.size[0] > 2 * WIDTH and pair.size[1] == gen.config.height


def test_cli_as_a_module_and_its_errors(exports, tmp_path, capsys):
    folder, gen = exports["city"]
    s = scene(gen.config, batch=1, seed=5)
    lab, ins = _pngs(tmp_path, gen.config, s)
    out = tmp_path / "out"

    def run(*a):
        return subprocess.run(
            [sys.executable, "-m", "asap_deploy.translate", *map(str, a)], capture_output=True, text=True
        )

    r = run(folder, lab, "--out", out, "--instance", ins)
    assert r.returncode == 0, r.stderr
    assert "1/1 images" in r.stderr and "ort-cpu-fp32" in r.stdout
    with asap_deploy.load(folder) as g:
        want = call(g, s)[0]
    assert np.array_equal(np.asarray(Image.open(next(out.glob("*.png")))), want)

    colour = tmp_path / "colour.png"
    Image.fromarray(np.zeros((512, WIDTH, 3), np.uint8)).save(colour)
    big = tmp_path / "big" / "x.png"
    big.parent.mkdir()
    Image.fromarray(np.zeros((1024, 2 * WIDTH), np.uint8), "L").save(big)
    other = tmp_path / "other"
    other.mkdir()
    r = run(folder, lab, "--out", out)  # errors: one line, exit code 2, no traceback
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "pass --instance" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    for argv, words in [
        ((folder, lab, "--out", out, "--instance", tmp_path / "nowhere"), "not found"),
        ((folder, lab, "--out", out, "--instance", other), "no instance map for"),
        ((folder, colour, "--out", out, "--instance", colour), "not a label map of ids"),
        ((folder, big, "--out", out, "--instance", big), "--resize"),
        ((folder, tmp_path / "missing.png", "--out", out), "not found"),
        ((tmp_path / "nope", lab, "--out", out), "not found"),
    ]:
        rc = translate_main([str(a) for a in argv])
        lines = [l for l in capsys.readouterr().err.splitlines() if l.strip()]
        assert rc == 2 and lines[-1].startswith("error: ") and words in lines[-1], (argv, lines)
    # --resize: the authors' loader resizes label maps with nearest neighbour
    assert translate_main([str(folder), str(big), "--out", str(out), "--instance", str(big), "--resize"]) == 0
    assert np.asarray(Image.open(out / "x.png")).shape == (512, WIDTH, 3)


def test_rgb_export_interface(exports):
    folder, gen = exports["rgb"]
    man = json.loads((folder / "manifest.json").read_text())
    assert man["input_mode"] == "rgb" and man["config"]["no_one_hot"]
    for f in man["files"]:
        if f["graph"] != "mlp":
            assert f["inputs"] == [
                {"name": "rgb", "dtype": "uint8", "shape": ["batch", gen.config.height, WIDTH, 3]}
            ]


def test_cli_on_a_cityscapes_folder_and_a_bad_instance_map(exports, tmp_path, capsys):
    """A gtFine-style folder (label, instance and colour PNGs side by side) is translated from its
    *_labelIds.png alone, with --instance the same folder; a wrong instance map is the file named."""
    folder, gen = exports["city"]
    s = scene(gen.config, batch=2, seed=6)
    lab, ins = _pngs(tmp_path, gen.config, s)
    for p in ins.iterdir():
        p.rename(lab / p.name)
        Image.fromarray(np.zeros((7, 7, 3), np.uint8)).save(lab / p.name.replace("instanceIds", "color"))
    out = tmp_path / "out"
    assert translate_main([str(folder), str(lab), "--instance", str(lab), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.glob("*.png")) == sorted(p.name for p in lab.glob("*_labelIds.png"))
    with asap_deploy.load(folder) as g:
        api = call(g, s)
    for k, p in enumerate(sorted(out.glob("*.png"))):
        assert np.array_equal(np.asarray(Image.open(p)), api[k])

    bad = sorted(lab.glob("*_instanceIds.png"))[0]
    Image.fromarray(np.zeros((8, 16), np.uint16)).save(bad)
    label = lab / bad.name.replace("instanceIds", "labelIds")
    out2 = tmp_path / "out2"
    capsys.readouterr()
    assert translate_main([str(folder), str(label), "--instance", str(bad), "--out", str(out2)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"error: {bad}: instance map is 8 x 16"), err
    assert not out2.exists()  # nothing written, not even the folder
