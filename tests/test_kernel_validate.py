"""The one shape check (asap_spatial_mlp_validate) against its machine-readable rules.

The rules in engines/plugin/spatialMLPPlugin/spatialMLPPlugin.json are Python expressions; for
each rule a case that breaks it (and no rule before it) is generated from valid calls by
changing one field, and the C validator must reject it with the rule's status and id. A random
search then checks that the C code and the expressions agree on many more calls, and unknown
(-1) dimensions never fail a check."""

import ctypes
import json
import random
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, Optional

import pytest

from asap_deploy.fused_mlp import SHAPE_FIELDS, AsapMLPShape, AsapMLPTensors, check
from asap_deploy.mlp_spec import MLPSpec

ROOT = Path(__file__).resolve().parents[1]
SPEC = json.loads((ROOT / "engines/plugin/spatialMLPPlugin/spatialMLPPlugin.json").read_text())
RULES = SPEC["constraints"]
STATUS = {"ASAP_OK": 0, "ASAP_ERR_SHAPE": 1, "ASAP_ERR_DIMS": 2, "ASAP_ERR_DTYPE": 3, "ASAP_ERR_LAYOUT": 4}
DTYPES = {"float32": 0, "float16": 1, "int32": 2, "float64": 7}
LAYOUTS = {"nchw": 0, "nhwc": 1, "nchw4": 5}
MODES = {"one_hot": 0, "label_ids": 1, "rgb": 3}


def valid_calls():
    out = []
    for c, s, mode, dt, layout in [
        (35, 16, "one_hot", "float16", "nhwc"),
        (13, 64, "label_ids", "float32", "nchw"),
        (5, 8, "one_hot", "float32", "nchw"),
        (20, 32, "label_ids", "float16", "nhwc"),
    ]:
        spec = MLPSpec(c, s)
        call = dict(
            in_channels=c,
            hidden_width=64,
            depth=5,
            out_channels=3,
            downsampling=s,
            num_frequencies=spec.num_frequencies,
            label_nc=c - 1,
            input_mode=mode,
            input=dict(
                B=2,
                C=1 if mode == "label_ids" else c + 1,
                H=2 * s,
                W=3 * s,
                dtype="int32" if mode == "label_ids" else dt,
            ),
            params=dict(
                B=2,
                C=spec.num_params,
                H=2,
                W=3,
                dtype=dt,
                layout=layout,
                pitch=spec.num_params + 5 if layout == "nhwc" else 0,
            ),
        )
        out.append(call)
    # as at engine-build time: the grid's extent is not known yet
    out.append(dict(out[0], params=dict(out[0]["params"], H=-1, W=-1)))
    return out


def num_params(call: Dict) -> int:
    c0 = call["in_channels"] + 4 * call["num_frequencies"]
    hw, oc, d = call["hidden_width"], call["out_channels"], call["depth"]
    return (c0 + 1) * hw + (d - 2) * (hw + 1) * hw + (hw + 1) * oc


def first_violation(call: Dict) -> Optional[Dict]:
    env = {k: call[k] for k in SHAPE_FIELDS}
    env.update(
        num_params=num_params(call),
        known=lambda v: v >= 0,
        input=SimpleNamespace(**call["input"]),
        params=SimpleNamespace(**call["params"]),
    )
    for rule in RULES:
        if not eval(rule["expr"], dict(env, __builtins__={"all": all})):  # noqa: S307 - our own spec
            return rule
    return None


def c_validate(lib, call: Dict):
    shape = AsapMLPShape(*(MODES[call[k]] if k == "input_mode" else call[k] for k in SHAPE_FIELDS))
    x, p = call["input"], call["params"]
    t = AsapMLPTensors(
        (ctypes.c_int64 * 4)(x["B"], x["C"], x["H"], x["W"]),
        (ctypes.c_int64 * 4)(p["B"], p["C"], p["H"], p["W"]),
        DTYPES[x["dtype"]],
        DTYPES[p["dtype"]],
        LAYOUTS[p["layout"]],
        p["pitch"],
    )
    status = lib.asap_spatial_mlp_validate(ctypes.byref(shape), ctypes.byref(t))
    return status, lib.asap_last_error().decode()


def mutations(call: Dict):
    """Every call that differs from ``call`` in one field."""

    def ints(v, wide=True):  # dimensions are int64, attributes and the pitch int32
        return {
            x
            for x in (v + 1, v - 1, 0, 1, 2 * v, 3 * v, v // 2, 65536, 2**20, 2**40)
            if x not in (v, -1) and (wide or x < 2**31)
        }

    for k in SHAPE_FIELDS:
        values = MODES if k == "input_mode" else ints(call[k], wide=False)
        for v in values:
            yield dict(call, **{k: v})
    for tensor in ("input", "params"):
        for k, v in call[tensor].items():
            if k == "dtype":
                values = DTYPES
            elif k == "layout":
                values = LAYOUTS
            else:
                values = ints(v, wide=k != "pitch")
            for new in values:
                if new != v:
                    yield dict(call, **{tensor: dict(call[tensor], **{k: new})})


@pytest.mark.parametrize(
    "call",
    valid_calls(),
    ids=lambda c: f"{c['in_channels']}x{c['downsampling']}-{c['input_mode']}-{c['params']['H']}",
)
def test_valid_calls_pass(cpu_lib, call):
    assert first_violation(call) is None
    assert c_validate(cpu_lib, call) == (0, "") or c_validate(cpu_lib, call)[0] == 0


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r["id"])
def test_each_rule_is_enforced(cpu_lib, rule):
    cases = [
        m
        for call in valid_calls()
        for m in mutations(call)
        if (v := first_violation(m)) is not None and v["id"] == rule["id"]
    ]
    assert cases, f"no single-field change breaks {rule['id']} first: the generator or the rule is wrong"
    for case in cases:
        status, message = c_validate(cpu_lib, case)
        assert status == STATUS[rule["status"]], (rule["id"], case, message)
        assert f"[{rule['id']}]" in message, message


def test_code_and_rules_agree_on_random_calls(cpu_lib):
    rng = random.Random(0)
    pool = [m for call in valid_calls() for m in mutations(call)]
    for _ in range(400):
        case = rng.choice(pool)
        for _ in range(rng.randint(0, 2)):  # up to three fields changed
            case = rng.choice(list(mutations(case)))
        rule = first_violation(case)
        status, message = c_validate(cpu_lib, case)
        assert status == (STATUS[rule["status"]] if rule else 0), (case, rule, message)
        if rule:
            assert f"[{rule['id']}]" in message


def test_unknown_dimensions_never_fail(cpu_lib):
    rng = random.Random(1)
    for call in valid_calls():
        for _ in range(30):
            case = json.loads(json.dumps(call))
            for tensor in ("input", "params"):
                for k in "BCHW":
                    if rng.random() < 0.5:
                        case[tensor][k] = -1
            assert c_validate(cpu_lib, case)[0] == 0, case


def test_binding_raises_the_message(cpu_lib):
    call = valid_calls()[0]
    bad = dict(call, params=dict(call["params"], B=3))
    status, _ = c_validate(cpu_lib, bad)
    from asap_deploy.fused_mlp import KernelError

    with pytest.raises(KernelError, match=r"\[batch_match\] params batch 3 differs from the label batch 2"):
        check(cpu_lib, status, "ASAP_SpatialMLP")
