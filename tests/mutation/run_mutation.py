"""Mutation testing of the modules whose mistakes the other tests are least likely to notice.

    .venv/bin/pip install mutmut==3.8.1          # once (not a project dependency)
    .venv/bin/python tests/mutation/run_mutation.py [--max-children 2] [--only PATTERN]

mutmut 3 (PyPI, runs offline once installed) mutates every function of the modules in
``MODULES`` (operators, constants, comparisons, string literals, removed arguments), and runs, for
each mutant, only those of the ``TESTS`` that executed the mutated function in a first plain run,
fastest first, stopping at the first failure. The run happens in a copy of the tree under
``build/mutation`` (mutmut writes its ``mutants/`` folder beside its configuration), so the working
tree and its configuration files stay untouched.

Results: ``tests/mutation/mutation.json`` (per-module counts, every surviving mutant with its diff
and the reason it may survive, the command, the run time) and ``mutation.md``. A survivor is
explained in ``tests/mutation/equivalent.json`` (mutant name -> the mutated line and a one-line
reason); the runner marks an entry stale when the mutant's line no longer matches, and lists any
unexplained survivor, so the two cannot drift apart silently.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
STAGE = ROOT / "build" / "mutation"

#: the modules under test (issue 12: MLP layout, label encoding, checkpoint loading, FP16 converter)
MODULES = [
    "asap_deploy/mlp_spec.py",
    "asap_deploy/model/label_encoding.py",
    "asap_deploy/checkpoint.py",
    "asap_deploy/training_options.py",
    "asap_deploy/onnx_export/fp16.py",
]
#: the tests that exercise them, fast ones only: each mutant runs every test that covers it (all of
#: them when it survives), in a fresh process, so a slow test costs its time once per mutant. Left
#: out: test_onnx_export.py (its fixture exports six models; test_fp16_converter.py and
#: test_label_encoding.py test the same code on small graphs), the model-parity tests of
#: test_model_parity.py (whole generators; the encoding and layout they rely on are checked bit for
#: bit in test_mlp_spec.py) and the compiler-bound kernel tests
TESTS = [
    "tests/test_mlp_spec.py",
    "tests/test_state_dict_layout.py",
    "tests/test_model_parity.py::test_label_oracle_known_answers",
    "tests/test_model_parity.py::test_label_encoder_matches_oracle",
    "tests/test_model_parity.py::test_label_encoder_id_without_channel_is_zero",
    "tests/test_label_encoding.py",
    "tests/test_checkpoint.py",
    "tests/test_checkpoint_inference.py",
    "tests/test_training_options.py",
    "tests/test_errors_checkpoint.py",
    "tests/test_fp16_converter.py",
]
#: seconds each (a generator built and run, or a full export); what they check about the modules
#: under test is checked without them in test_checkpoint_inference.py
DESELECT = [
    "tests/test_checkpoint.py::test_architecture_inferred_from_tensors",
    "tests/test_errors_checkpoint.py::test_warning_is_printed_and_the_export_succeeds",
]
STATUS = {
    1: "killed",
    3: "killed",
    0: "survived",
    5: "no tests",
    33: "no tests",
    34: "skipped",
    36: "timeout",
    -24: "timeout",
    24: "timeout",
    152: "timeout",
    255: "timeout",
    37: "caught by type check",
    None: "not checked",
}


def _config(only: List[str], tests: List[str]) -> str:
    lines = ["", "[mutmut]", "source_paths = asap_deploy", "only_mutate ="]
    lines += [f"    {m}" for m in (only or MODULES)]
    lines += ["pytest_add_cli_args_test_selection ="] + [f"    {t}" for t in tests]
    lines += ["pytest_add_cli_args =", "    -p", "    no:cacheprovider"]
    lines += [f"    --deselect={d}" for d in DESELECT]
    lines += [
        # torch is not fork-safe after it has run: fork workers from a clean server
        "process_isolation = forkserver",
        "use_git_change_detection = false",
        "timeout_multiplier = 10.0",
        "timeout_constant = 30.0",
        "",
    ]
    return "\n".join(lines)


def stage(only: List[str], tests: List[str]) -> None:
    if STAGE.exists():
        shutil.rmtree(STAGE)
    STAGE.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis", "mutation")
    shutil.copytree(ROOT / "asap_deploy", STAGE / "asap_deploy", ignore=ignore)
    shutil.copytree(ROOT / "tests", STAGE / "tests", ignore=ignore)
    shutil.copy2(ROOT / "pyproject.toml", STAGE / "pyproject.toml")
    cfg = (ROOT / "setup.cfg").read_text() + _config(only, tests)
    (STAGE / "setup.cfg").write_text(cfg)


def refresh() -> List[str]:
    """Bring the current sources and tests into an earlier run's ``build/mutation``: mutmut then
    regenerates the mutants of the functions whose code changed (their results are reset) and runs
    the current tests. A changed file is copied with a new modification time: mutmut regenerates a
    file's mutants only when the source is newer than them, and ``copy2`` would keep the working
    tree's time, which can be older than the mutants although the content differs."""
    changed = []
    for folder in ("asap_deploy", "tests"):
        src, dst = ROOT / folder, STAGE / folder
        wanted = set()
        for f in src.rglob("*"):
            rel = f.relative_to(src)
            if (
                not f.is_file()
                or any(p in ("__pycache__", ".hypothesis", "mutation") for p in rel.parts)
                or f.suffix == ".pyc"
            ):
                continue
            wanted.add(rel)
            target = dst / rel
            if target.is_file() and target.read_bytes() == f.read_bytes():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, target)
            changed.append(f"{folder}/{rel}")
        for f in dst.rglob("*"):
            rel = f.relative_to(dst)
            if (
                f.is_file()
                and rel not in wanted
                and not any(p in ("__pycache__", ".hypothesis", "mutation") for p in rel.parts)
                and f.suffix != ".pyc"
            ):
                f.unlink()
                changed.append(f"{folder}/{rel} (removed)")
    if changed:
        print("refreshed from the working tree: " + ", ".join(changed))
    return changed


def _mutmut(*args: str, capture: bool = False) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("mutmut")
    return subprocess.run([str(exe), *args], cwd=STAGE, text=True, capture_output=capture, check=False)


def results() -> Dict[str, Dict]:
    """Mutant name -> {module, status, exit_code} from mutmut's per-file ``.meta`` files."""
    out = {}
    for meta in sorted((STAGE / "mutants" / "asap_deploy").rglob("*.py.meta")):
        data = json.loads(meta.read_text())
        module = str(meta.relative_to(STAGE / "mutants"))[: -len(".meta")]
        for name, code in data["exit_code_by_key"].items():
            out[name] = {"module": module, "exit_code": code, "status": STATUS.get(code, "suspicious")}
    return out


def _diff(name: str, module: str) -> List[str]:
    """The changed lines of one mutant (mutmut's own diff, in this process: ``mutmut show``
    costs seconds per call)."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    cwd = os.getcwd()
    os.chdir(STAGE)
    try:
        shown = get_diff_for_mutant(name, path=module)
    finally:
        os.chdir(cwd)
    return [l for l in shown.splitlines() if l[:1] in "+-" and not l.startswith(("+++", "---"))]


def report(runs: List[Dict], tests: List[str]) -> Dict:
    res = results()
    explained = json.loads((HERE / "equivalent.json").read_text())
    per_module: Dict[str, Counter] = {}
    survivors = []
    for name, r in sorted(res.items()):
        per_module.setdefault(r["module"], Counter())[r["status"]] += 1
        if r["status"] in ("killed", "caught by type check", "not checked"):
            continue
        diff = _diff(name, r["module"])
        entry = {"mutant": name, "module": r["module"], "status": r["status"], "diff": diff}
        why = explained.get(name)
        if why is None:
            entry["reason"] = None
        elif why["mutated"].strip() not in [l[1:].strip() for l in diff if l.startswith("+")]:
            entry["reason"] = None
            entry["stale_explanation"] = why
        else:
            entry["reason"] = why["reason"]
        survivors.append(entry)
    modules = {}
    for module, c in sorted(per_module.items()):
        total = sum(c.values())
        modules[module] = {
            "total": total,
            "killed": c["killed"],
            "survived": c["survived"],
            "timeout": c["timeout"],
            "no_tests": c["no tests"],
            "other": total - c["killed"] - c["survived"] - c["timeout"] - c["no tests"],
            "score": round(c["killed"] / total, 4) if total else None,
        }
    totals = Counter()
    for m in modules.values():
        totals.update({k: v for k, v in m.items() if k != "score"})
    import mutmut

    return {
        "what": "mutation testing (mutmut) of the modules below against the listed tests",
        "runs": runs,
        "wall_time_s": sum(r["wall_time_s"] for r in runs),
        "mutmut": mutmut.__version__,
        "python": platform.python_version(),
        "tests": tests,
        "modules": modules,
        "total": {
            **totals,
            "score": round(totals["killed"] / totals["total"], 4) if totals["total"] else None,
        },
        "unexplained_survivors": [s["mutant"] for s in survivors if s["reason"] is None],
        "survivors": survivors,
    }


def markdown(rep: Dict) -> str:
    lines = [
        "# Mutation testing",
        "",
        f"mutmut {rep['mutmut']}, {rep['wall_time_s']} s in all on the shared 2-core development machine:",
        "",
    ]
    lines += [f"- `{r['command']}`: {r['mutants']} mutants, {r['wall_time_s']} s" for r in rep["runs"]]
    lines += [
        "",
        "Tests: " + ", ".join(f"`{t}`" for t in rep["tests"]) + ".",
        "",
        "| module | mutants | killed | survived | timeout | no tests | score |",
        "|---|---|---|---|---|---|---|",
    ]
    for module, m in list(rep["modules"].items()) + [("**total**", rep["total"])]:
        lines.append(
            f"| {module} | {m['total']} | {m['killed']} | {m['survived']} | "
            f"{m['timeout']} | {m['no_tests']} | {m['score']:.1%} |"
        )
    lines += [
        "",
        "Timeouts count as not killed in the score.",
        "",
        "## Survivors",
        "",
        "| mutant | change | why it may survive |",
        "|---|---|---|",
    ]
    for s in rep["survivors"]:
        change = " / ".join(f"`{l.strip()}`".replace("|", "\\|") for l in s["diff"])
        lines.append(f"| `{s['mutant']}` ({s['status']}) | {change} | {s['reason'] or '**unexplained**'} |")
    return "\n".join(lines) + "\n"


def _runs() -> List[Dict]:
    path = STAGE / "runs.json"
    return json.loads(path.read_text()) if path.exists() else []


def _record(command: str, elapsed: float, mutants: int) -> None:
    (STAGE / "runs.json").write_text(
        json.dumps(
            _runs() + [{"command": command, "wall_time_s": round(elapsed), "mutants": mutants}], indent=1
        )
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--max-children", type=int, default=2)
    p.add_argument("--only", nargs="*", default=[], help="mutate only these of MODULES")
    p.add_argument("--tests", nargs="*", default=TESTS, help="test files to run (default: TESTS)")
    p.add_argument(
        "--rerun-survivors",
        action="store_true",
        help="copy the current tests into the last run's build/mutation and run the "
        "mutants that survived or had no test again",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="go on with an interrupted run in build/mutation with the current sources "
        "and tests (finished mutants keep their results unless their function "
        "changed)",
    )
    p.add_argument(
        "--report-only", action="store_true", help="rewrite the report from the last run's build/mutation"
    )
    p.add_argument("--out", type=Path, default=HERE)
    args = p.parse_args()
    try:
        import mutmut  # noqa: F401
    except ImportError:
        print("error: mutmut is not installed: .venv/bin/pip install mutmut==3.8.1", file=sys.stderr)
        return 2
    command = "python tests/mutation/run_mutation.py " + " ".join(sys.argv[1:])
    names: List[str] = []
    if args.rerun_survivors or args.resume:
        refresh()
    elif not args.report_only:
        stage(args.only, args.tests)
    if not args.report_only:
        t0 = time.monotonic()
        rc = _mutmut("run", "--max-children", str(args.max_children)).returncode
        if rc == 0 and args.rerun_survivors:
            # hangs (timeouts) are not run again: each costs the whole time limit
            names = [n for n, r in results().items() if r["status"] not in ("killed", "timeout")]
            rc = _mutmut("run", "--max-children", str(args.max_children), *names).returncode
        elapsed = time.monotonic() - t0
        if rc:
            print(f"error: mutmut exited with {rc}", file=sys.stderr)
            return rc
        _record(command.strip(), elapsed, len(names) or len(results()))
        if any(r["status"] == "not checked" for r in results().values()):
            print("error: mutants are left unchecked: run again with --resume", file=sys.stderr)
            return 1
    rep = report(_runs(), args.tests)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "mutation.json").write_text(json.dumps(rep, indent=2) + "\n")
    (args.out / "mutation.md").write_text(markdown(rep))
    print(
        f"score {rep['total']['score']:.1%} ({rep['total']['killed']}/{rep['total']['total']}); "
        f"{len(rep['unexplained_survivors'])} unexplained survivors; "
        f"wrote {args.out}/mutation.json, mutation.md"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
