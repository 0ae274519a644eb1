"""The committed mutation-testing result (tests/mutation/, made by run_mutation.py) is complete:
it covers the modules the runner names, its counts add up, every mutant that was not killed is
explained in one line, and no explanation is left over from an older run."""

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent / "mutation"
sys.path.insert(0, str(HERE))

import run_mutation  # noqa: E402

REPORT = json.loads((HERE / "mutation.json").read_text())
EXPLAINED = json.loads((HERE / "equivalent.json").read_text())


def test_report_covers_the_runner_modules_and_tests():
    assert sorted(REPORT["modules"]) == sorted(run_mutation.MODULES)
    assert REPORT["tests"] == run_mutation.TESTS
    assert all(Path(run_mutation.ROOT / t.split("::")[0]).is_file() for t in REPORT["tests"])
    assert REPORT["runs"] and REPORT["wall_time_s"] == sum(r["wall_time_s"] for r in REPORT["runs"])


def test_counts_add_up():
    keys = ("total", "killed", "survived", "timeout", "no_tests", "other")
    for name, m in REPORT["modules"].items():
        assert m["total"] == sum(m[k] for k in keys[1:]), name
        assert m["other"] == 0, f"{name}: mutants left unchecked or suspicious"
        assert m["score"] == round(m["killed"] / m["total"], 4)
    for k in keys:
        assert REPORT["total"][k] == sum(m[k] for m in REPORT["modules"].values())
    not_killed = sum(REPORT["total"][k] for k in ("survived", "timeout", "no_tests"))
    assert len(REPORT["survivors"]) == not_killed


def test_every_mutant_that_was_not_killed_is_explained():
    assert REPORT["unexplained_survivors"] == []
    for s in REPORT["survivors"]:
        assert s["reason"] and "stale_explanation" not in s, s["mutant"]
    assert sorted(EXPLAINED) == sorted(s["mutant"] for s in REPORT["survivors"]), (
        "equivalent.json explains mutants the last run killed: remove them"
    )


def test_markdown_is_the_json_rendered():
    assert (HERE / "mutation.md").read_text() == run_mutation.markdown(REPORT)
