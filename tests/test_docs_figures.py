"""Every measured figure in the READMEs follows from a committed file or a test, and every file
or test a README cites exists.

- Tables and sentences of figures are rendered here from the committed results they quote
  (benchmarks/results/...) and must appear in the README verbatim: a re-run that changes a
  number fails until the README says the new one.
- Single figures in prose are listed in ``FIGURES`` with the computation that backs them.
- Every figure-like token (ms, dB, KB, M parameters, 1.5e-07) in a README must be one of those,
  a threshold or target (written after <=, >=, <, >, ≤ or ≥), or listed in ``EXPLAINED``
  with where it is checked or why it is not a measurement: a new unbacked number fails here, naming its line.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [
    "README.md",
    "engines/README.md",
    "engines/plugin/spatialMLPPlugin/README.md",
    "engines/emulation/README.md",
    "benchmarks/README.md",
    "export/README.md",
]
CPU = ROOT / "benchmarks" / "results" / "cpu-epyc-2core"
EXPORT_MANIFEST = CPU / "export-cityscapes-256x512" / "manifest.json"
KERNEL_ACCESS = ROOT / "benchmarks" / "results" / "emulated" / "kernel-access.json"
SIZES = ["256x512", "512x1024", "1024x2048"]


def _text(doc: str) -> str:
    return (ROOT / doc).read_text()


def _json(path: Path) -> Dict:
    return json.loads(path.read_text())


# -- cited files and tests ---------------------------------------------------------------------
#: paths a README names that are not committed files: outputs, placeholders, install locations
_NOT_A_CITATION = re.compile(r"^(build/|\$)|[<>*{}]|my-machine|/results/<|^out/|^EXPORT/")
#: a cited file that does not exist yet -> why the check expects it to be missing (strict: once the
#: file lands, the test fails until the entry is removed)
KNOWN_MISSING: Dict[Tuple[str, str], str] = {}


def _cited(doc: str) -> List[str]:
    text = _text(doc)
    found = re.findall(r"`([^`\s]+)`", text) + re.findall(r"\]\(([^)\s#]+)\)", text)
    found += re.findall(r"(?<![\w/.`])((?:tests|benchmarks)/[\w./-]+\.(?:py|json|md|sh))", text)
    out = []
    for token in found:
        token = token.rstrip(".,;:")
        if "/" not in token.split("::")[0] or "://" in token or _NOT_A_CITATION.search(token):
            continue
        if token.startswith(("-", "--")) or "=" in token:
            continue
        out.append(token)
    return sorted(set(out))


def _resolve(doc: str, token: str):
    """The file or folder ``token`` names: relative to the repository, the package, the README's
    folder or one of its subfolders (a table of engines/app's files names them from there)."""
    path = token.split("::")[0]
    here = (ROOT / doc).parent
    for base in [ROOT, ROOT / "asap_deploy", here] + sorted(p for p in here.iterdir() if p.is_dir()):
        if (base / path).exists():
            return base / path
    return None


_EXTENSIONS = (".py", ".json", ".md", ".h", ".cpp", ".cu", ".sh", ".txt", ".png", ".cfg")
#: folders of a TensorRT or CUDA install that the READMEs mention, not files of this repository
_INSTALL_FOLDERS = {"include/", "lib/", "bin/"}


def _looks_like_a_path(token: str) -> bool:
    path = token.split("::")[0]
    if path in _INSTALL_FOLDERS:
        return False
    last = path.rstrip("/").rsplit("/", 1)[-1]
    if re.fullmatch(r"[A-Z_]+(\.\w+)*", last):  # ENGINE.plan, EXPORT: placeholders
        return False
    return path.endswith("/") or path.endswith(_EXTENSIONS)


@pytest.mark.parametrize("doc", DOCS)
def test_cited_files_and_tests_exist(doc):
    cited = [t for t in _cited(doc) if _looks_like_a_path(t)]
    assert cited, f"{doc}: no citation found: the search itself is broken"
    missing, no_test = [], []
    for token in cited:
        where = _resolve(doc, token)
        if where is None:
            if (doc, token.split("::")[0]) not in KNOWN_MISSING:
                missing.append(token)
            continue
        if "::" in token:
            name = token.split("::")[1].split("[")[0]
            if not re.search(rf"^def {re.escape(name)}\(", where.read_text(), re.M):
                no_test.append(token)
    assert missing == [], f"{doc} cites files that do not exist: {missing}"
    assert no_test == [], f"{doc} cites tests that do not exist: {no_test}"


@pytest.mark.xfail(strict=True, reason="a known missing citation: see KNOWN_MISSING")
@pytest.mark.parametrize("doc,path", sorted(KNOWN_MISSING))
def test_known_missing_citations_are_still_missing(doc, path):
    assert path in _text(doc)
    assert (ROOT / path).exists()


# -- figures rendered from committed results ---------------------------------------------------
def cpu_table() -> str:
    """README's CPU table: median end-to-end latency per backend, from bench.json."""
    res = _json(CPU / "bench.json")["results"]
    med = {(r["resolution"], r["backend"]): r["latency"]["median"] for r in res if "latency" in r}
    rows = ["| resolution | torch eager FP32 | ORT CPU FP32 | ORT CPU FP16 |", "|---|---|---|---|"]
    for size in SIZES:
        rows.append(
            f"| {size} | "
            + " | ".join(
                f"{med[size, b]:.0f} ms" for b in ("torch-eager-fp32", "ort-cpu-fp32", "ort-cpu-fp16")
            )
            + " |"
        )
    return "\n".join(rows)


def cpu_caption() -> str:
    res = [r for r in _json(CPU / "bench.json")["results"] if "latency" in r]
    runs = {r["iterations"] for r in res}
    warm = {r["options"]["warmup_ms"] for r in res}
    assert len(runs) == 1 and len(warm) == 1, "the README states one iteration count and warm-up"
    return f"Median end-to-end latency over {runs.pop()} runs after a {warm.pop() / 1e3:g} s warm-up"


def cpu_parity_sentence() -> str:
    res = _json(CPU / "parity" / "parity.json")["results"]
    fig = {(r["resolution"], r["backend"]): r for r in res if "max_abs" in r}
    fp32 = " / ".join(f"{fig[s, 'ort-cpu-fp32']['max_abs']:.1e}" for s in SIZES)
    fp16 = " / ".join(f"{fig[s, 'ort-cpu-fp16']['psnr_db']:.1f}" for s in SIZES)
    return f"ORT FP32 max abs error {fp32} at {' / '.join(SIZES)}, ORT FP16 PSNR {fp16} dB"


def export_parity_table() -> str:
    parity = _json(EXPORT_MANIFEST)["parity"]
    rows = ["| graph | FP32 max abs | FP16 PSNR |", "|---|---|---|"]
    for graph, label in (
        ("asapnet", "asapnet"),
        ("asapnet_plugin", "asapnet_plugin"),
        ("mlp", "mlp (stage alone)"),
    ):
        rows.append(
            f"| {label} | {parity['fp32'][graph]['max_abs']:.1e} | "
            f"{parity['fp16'][graph]['psnr_db']:.1f} dB |"
        )
    return "\n".join(rows)


def kernel_access_block() -> str:
    from asap_deploy import kernel_report

    return (
        kernel_report.MARK_BEGIN
        + "\n"
        + kernel_report.markdown(_json(KERNEL_ACCESS))
        + kernel_report.MARK_END
    )


RENDERED: List[Tuple[str, Callable[[], str]]] = [
    ("README.md", cpu_table),
    ("README.md", cpu_caption),
    ("README.md", cpu_parity_sentence),
    ("README.md", export_parity_table),
    ("engines/README.md", kernel_access_block),
]


@pytest.mark.parametrize("doc,render", RENDERED, ids=[r.__name__ for _, r in RENDERED])
def test_rendered_figures_are_in_the_readme(doc, render):
    want = render()
    assert want in _text(doc), f"{doc} does not say what its source says:\n{want}"


def test_results_folder_records_its_own_command():
    """No hand edits: the command in each JSON is the one that wrote it, output folder included."""
    bench = _json(CPU / "bench.json")["environment"]
    parity = _json(CPU / "parity" / "parity.json")["environment"]
    assert bench["command"].startswith("python -m asap_deploy.bench ")
    assert "--out benchmarks/results/cpu-epyc-2core" in bench["command"]
    assert "--out benchmarks/results/cpu-epyc-2core/parity" in parity["command"]
    assert "note" not in bench and "note" not in parity
    assert bench["cpu"] == parity["cpu"] and "EPYC" in bench["cpu"], (
        "the folder is named after the CPU /proc/cpuinfo reports"
    )
    assert (
        (CPU / "bench.md")
        .read_text()
        .startswith(
            f"Device: {bench['cpu']}; load average (1 min) when written: {bench['load_average_1min']}; "
            f"command: `{bench['command']}`"
        )
    )


# -- single figures in prose -------------------------------------------------------------------
def _demo_parameters() -> str:
    import torch

    from asap_deploy.checkpoint import expected_shapes
    from asap_deploy.config import GeneratorConfig
    from asap_deploy.presets import load_preset

    cfg = GeneratorConfig(**load_preset("cityscapes-256x512").generator)
    total = sum(torch.Size(s).numel() for s in expected_shapes(cfg).values())
    return f"{total / 1e6:.1f} M parameters"


def _ptxas_registers() -> str:
    return (
        f"registers ({_json(KERNEL_ACCESS)['ptxas']['sm_90']['tensor_core_kernel']['registers']} per thread)"
    )


def _fp32_weights_kb() -> str:
    from asap_deploy.mlp_spec import MLPSpec

    # the largest paper MLP (Cityscapes, S = 64) in FP32: what the generic path would stage
    return f"FP32 at the paper widths ({MLPSpec(35, 64).num_params * 4 / 1e3:.0f} KB)"


#: (doc, the exact text, what computes it from a committed file or the code)
FIGURES: List[Tuple[str, str, Callable[[], str]]] = [
    ("README.md", "83.2 M parameters", _demo_parameters),  # = tests/test_state_dict_layout.py
    ("engines/README.md", "registers (248 per thread)", _ptxas_registers),
    ("engines/README.md", "FP32 at the paper widths (66 KB)", _fp32_weights_kb),
]


@pytest.mark.parametrize("doc,text,source", FIGURES, ids=[t for _, t, _ in FIGURES])
def test_prose_figures_match_their_source(doc, text, source):
    assert text in _text(doc), f"{doc} no longer says {text!r}: update FIGURES"
    assert source() == text


def test_tensor_core_shared_memory_range(cpu_lib):
    """engines/README.md: 'Shared memory at the paper settings: 62.0–65.4 KB' (the kernels'
    own plan, from the CPU build of the header)."""
    from asap_deploy.fused_mlp import make_shape
    from asap_deploy.mlp_spec import MLPSpec

    sizes = [
        cpu_lib.asap_tensor_core_smem_bytes(make_shape(MLPSpec(c, s), c, mode))
        for c, s in [(35, 16), (35, 32), (35, 64), (13, 32), (13, 64)]
        for mode in ("one_hot", "label_ids")
    ]
    quoted = f"{min(sizes) / 1e3:.1f}–{max(sizes) / 1e3:.1f} KB"
    assert f"Shared memory at the paper settings: {quoted}" in _text("engines/README.md")


# -- everything that looks like a figure is accounted for --------------------------------------
#: (doc, text) -> where it is checked, or why it is not a measurement
EXPLAINED = {
    ("engines/README.md", "62.0–65.4 KB"): "the kernels' shared-memory plan, checked by "
    "test_tensor_core_shared_memory_range",
}
_FIGURE = re.compile(
    r"(?<![\w.])(\d+(?:\.\d+)?(?:[–-]\d+(?:\.\d+)?)?(?:e-\d+)?)\s?"
    r"(ms|dB|KB|M parameters)(?![\w])|(?<![\w.])\d\.\d+e-\d+"
)
_COMPARATOR = re.compile(r"(≤|≥|<=|>=|<|>)\s*$")


def _accounted(doc: str) -> List[str]:
    texts = [r() for d, r in RENDERED if d == doc]
    texts += [t for d, t, _ in FIGURES if d == doc]
    texts += [t for d, t in EXPLAINED if d == doc]
    return texts


@pytest.mark.parametrize("doc", DOCS)
def test_every_figure_is_backed_or_a_threshold(doc):
    text = _text(doc)
    covered = []  # character spans of the backed texts
    for t in _accounted(doc):
        start = text.find(t)
        while start != -1:
            covered.append((start, start + len(t)))
            start = text.find(t, start + 1)
    loose = []
    for m in _FIGURE.finditer(text):
        if _COMPARATOR.search(text[max(0, m.start() - 4) : m.start()]):
            continue  # a threshold or a target, not a measurement
        if any(a <= m.start() and m.end() <= b for a, b in covered):
            continue
        line = text.count("\n", 0, m.start()) + 1
        loose.append(f"line {line}: {m.group(0)!r}")
    assert loose == [], (
        f"{doc}: figures with no committed source (add the file to RENDERED or "
        f"FIGURES, or say why in EXPLAINED): {loose}"
    )
