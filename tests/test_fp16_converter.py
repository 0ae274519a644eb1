"""The FP32 -> FP16 ONNX converter (asap_deploy/onnx_export/fp16.py) on small hand-built graphs
with the structures of the real ones: a padded depthwise blur, convolutions, InstanceNorm (alone
and back to back), an activation chain. Each property is one the engine's accuracy or speed
depends on; the whole-model consequences are in test_onnx_export.py."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from asap_deploy.onnx_export.fp16 import _blur_nodes, convert_to_fp16

F32, F16 = TensorProto.FLOAT, TensorProto.FLOAT16
BLUR = "blur"


def _init(name, shape, seed, scale=0.3):
    rng = np.random.default_rng(seed)
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def generator_like(two_norms: bool = False, named: bool = True) -> onnx.ModelProto:
    """x -> Cast to float (the model's own, of a float tensor, as PyTorch writes ``.float()``)
    -> Pad -> depthwise blur -> Conv -> InstanceNorm [-> InstanceNorm] -> LeakyRelu -> Conv 1x1
    -> Tanh -> y, plus a second output ``params`` taken before the tanh, and a dead branch
    (x * k, never used) that the conversion's clean-up drops with its initializer."""
    nodes = [
        helper.make_node("Mul", ["x", "k"], ["unused"], name="dead"),
        helper.make_node("Cast", ["x"], ["xc"], to=F32, name="own_cast"),
        helper.make_node("Pad", ["xc", "pads"], ["xp"], mode="reflect", name="blur_pad"),
        helper.make_node("Conv", ["xp", "blur_w"], ["xb"], group=2, kernel_shape=[3, 3], name=BLUR),
        helper.make_node("Conv", ["xb", "w1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("InstanceNormalization", ["c1", "s1", "b1"], ["n1"], name="norm1"),
    ]
    last = "n1"
    if two_norms:
        nodes.append(helper.make_node("InstanceNormalization", ["n1", "s2", "b2"], ["n2"], name="norm2"))
        last = "n2"
    nodes += [
        helper.make_node("LeakyRelu", [last], ["a1"], alpha=0.2, name="act"),
        helper.make_node("Conv", ["a1", "w2"], ["params"], kernel_shape=[1, 1], name="head"),
        helper.make_node("Tanh", ["params"], ["y"], name="tanh"),
    ]
    if not named:
        for n in nodes:
            n.name = ""
    inits = [
        numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads"),
        numpy_helper.from_array(np.float32(2.0), "k"),
        numpy_helper.from_array(np.full((2, 1, 3, 3), 1 / 9, np.float32), "blur_w"),
        _init("w1", (4, 2, 3, 3), 1),
        _init("s1", (4,), 2, 1.0),
        _init("b1", (4,), 3),
        _init("w2", (3, 4, 1, 1), 4),
    ]
    if two_norms:
        inits += [_init("s2", (4,), 5, 1.0), _init("b2", (4,), 6)]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", F32, [1, 2, 8, 8])],
        [
            helper.make_tensor_value_info("y", F32, [1, 3, 8, 8]),
            helper.make_tensor_value_info("params", F32, [1, 3, 8, 8]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return onnx.shape_inference.infer_shapes(model)


def _types(model):
    g = onnx.shape_inference.infer_shapes(model).graph
    t = {v.name: v.type.tensor_type.elem_type for v in list(g.value_info) + list(g.input) + list(g.output)}
    t.update({i.name: i.data_type for i in g.initializer})
    return t


def _by_op(model, op):
    return [n for n in model.graph.node if n.op_type == op]


def _run(model, x):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})


X = np.random.default_rng(0).standard_normal((1, 2, 8, 8)).astype(np.float32)


# function scope on purpose: converting these graphs takes milliseconds, and a module-scoped
# fixture would tie the conversion to the first test only (mutation testing maps each function to
# the tests that ran it)
@pytest.fixture(params=[False, True], ids=["one-norm", "two-norms"])
def converted(request):
    src = generator_like(two_norms=request.param)
    before = src.SerializeToString()
    out = convert_to_fp16(src, keep_float32=["x", "y"])
    assert src.SerializeToString() == before, "the FP32 model was modified in place"
    onnx.checker.check_model(out, full_check=True)
    return src, out


def test_policy_fp32_norm_and_blur_fp16_convolutions(converted):
    src, out = converted
    t = _types(out)
    for n in _by_op(out, "InstanceNormalization"):
        assert [t[i] for i in n.input] == [F32] * 3 and t[n.output[0]] == F32, n.name
    pad, blur = _by_op(out, "Pad")[0], [n for n in _by_op(out, "Conv") if n.name == BLUR][0]
    assert "own_cast" not in [n.name for n in out.graph.node]  # float -> float: a no-op
    assert t[pad.input[0]] == F32 and t[pad.output[0]] == F32
    assert [t[i] for i in blur.input] == [F32, F32] and t[blur.output[0]] == F32
    for n in _by_op(out, "Conv"):
        if n.name != BLUR:
            assert [t[i] for i in n.input] == [F16, F16] and t[n.output[0]] == F16, n.name
    for op in ("LeakyRelu", "Tanh"):
        assert t[_by_op(out, op)[0].input[0]] == F16


def test_kept_io_stay_fp32_and_the_rest_becomes_fp16(converted):
    _, out = converted
    assert {v.name: v.type.tensor_type.elem_type for v in out.graph.input} == {"x": F32}
    assert {v.name: v.type.tensor_type.elem_type for v in out.graph.output} == {"y": F32, "params": F16}


def test_no_noop_casts_and_no_fp32_fp16_fp32_round_trips(converted):
    _, out = converted
    t = _types(out)
    prod = {o: n for n in out.graph.node for o in n.output}
    casts = _by_op(out, "Cast")
    for c in casts:
        to = c.attribute[0].i
        assert t[c.input[0]] != to, f"{c.name} casts {c.input[0]} to its own type"
        first = prod.get(c.input[0])
        if first is not None and first.op_type == "Cast" and to == F32:
            assert t[first.input[0]] != F32, f"{first.name} -> {c.name} is an FP32 round trip"
    # exactly the casts the policy needs: out of the blur, into and out of the norms (back to
    # back norms share one FP32 region), and to the kept output
    assert len(casts) == 4, [(c.name, c.input, c.output) for c in casts]


def test_graph_is_sorted_and_holds_nothing_dead(converted):
    _, out = converted
    g = out.graph
    seen = {i.name for i in g.input} | {i.name for i in g.initializer} | {""}
    for n in g.node:
        assert all(i in seen for i in n.input), f"{n.name} comes before its inputs"
        seen.update(n.output)
    used = {i for n in g.node for i in n.input}
    assert {t.name for t in g.initializer} <= used
    assert "k" not in {t.name for t in g.initializer} and "unused" not in seen
    produced = {o for n in g.node for o in n.output}
    outputs = {o.name for o in g.output}
    # value_info describes every intermediate tensor, and nothing else
    assert {v.name for v in g.value_info} == produced - outputs
    for n in g.node:
        assert any(o in used or o in outputs for o in n.output), f"{n.name} is dead"


def test_numerics_follow_fp32_within_fp16_rounding(converted):
    src, out = converted
    y32, p32 = _run(src, X)
    y16, p16 = _run(out, X)
    assert y16.dtype == np.float32 and p16.dtype == np.float16
    assert np.abs(y16 - y32).max() < 5e-3
    assert np.abs(p16.astype(np.float32) - p32).max() < 1e-2


def test_unnamed_nodes_get_unique_names():
    out = convert_to_fp16(generator_like(named=False), keep_float32=["x", "y"])
    names = [n.name for n in out.graph.node]
    assert all(names) and len(set(names)) == len(names)
    onnx.checker.check_model(out, full_check=True)


def test_blur_nodes_are_the_depthwise_convs_and_their_pads():
    g = generator_like().graph
    assert _blur_nodes(g) == ["blur", "blur_pad"]
    # a depthwise conv not fed by a Pad is still blurred; a group-1 conv fed by a Pad is not
    lone = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w"], ["y"], group=2, name="dw"),
            helper.make_node("Pad", ["y", "p"], ["z"], name="pad"),
            helper.make_node("Conv", ["z", "w1"], ["o"], name="dense"),
        ],
        "g",
        [],
        [],
    )
    assert _blur_nodes(lone) == ["dw"]
