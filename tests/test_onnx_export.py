"""Every exported graph: valid opset >= 17 ONNX, shapes on every edge, dynamic batch, parity with
PyTorch in ONNX Runtime (FP32 max abs <= 1e-4, FP16 PSNR >= 40 dB), and the custom node contract."""
import numpy as np
import onnx
import pytest

from asap_deploy.demo import demo_generator
from asap_deploy.onnx_export.exporter import GRAPHS, export_graphs, trace_graphs
from asap_deploy.onnx_export.plugin_node import (PLUGIN_NAMESPACE, PLUGIN_OP, PLUGIN_VERSION,
                                                 read_node_attributes)
from asap_deploy.onnx_export.verify import ort_session, verify
from conftest import small_config

CONFIGS = {
    "cityscapes-like": small_config(),
    "facades-like": small_config(instance_edge=False, lr_instance=False, padding="reflect",
                                 downsampling=64, label_nc=4, contain_dontcare_label=True),
    "edges-in-mlp": small_config(lr_instance=False, downsampling=16),
}


@pytest.fixture(scope="module", params=[(c, m) for c in CONFIGS for m in ("one-hot", "labels")],
                ids=lambda p: f"{p[0]}-{p[1]}")
def exported(request):
    name, mode = request.param
    gen = demo_generator(CONFIGS[name], seed=5)
    h, w = gen.config.height, gen.config.downsampling * 3
    traced = trace_graphs(gen, h, w, mode)
    return gen, mode, h, w, {p: export_graphs(gen, h, w, p, traced) for p in ("fp32", "fp16")}


def test_graphs_are_valid_and_fully_shaped(exported):
    _, _, _, _, by_prec = exported
    for graphs in by_prec.values():
        assert set(graphs) == set(GRAPHS)
        for art in graphs.values():
            m = art.model
            onnx.checker.check_model(m, full_check=True)
            assert {o.domain: o.version for o in m.opset_import}[""] >= 17
            for vi in list(m.graph.input) + list(m.graph.output):
                assert vi.type.tensor_type.shape.dim[0].dim_param == "batch"
            shaped = {v.name for v in m.graph.value_info} | {o.name for o in m.graph.output}
            assert all(o in shaped for n in m.graph.node for o in n.output if o)


def test_parity_with_pytorch(exported):
    gen, mode, h, w, by_prec = exported
    for prec, graphs in by_prec.items():
        res = verify(gen, graphs, h, w, batch=2)
        for name, m in res.items():
            assert m["ok"], (prec, name, m)
        if prec == "fp32":
            assert res["asapnet"]["max_abs"] <= 1e-4
        else:
            assert res["asapnet_plugin"]["psnr_db"] >= 40


def test_fp16_graph_types(exported):
    _, _, _, _, by_prec = exported
    g16 = by_prec["fp16"]
    elem = {vi.name: vi.type.tensor_type.elem_type for vi in g16["asapnet"].model.graph.input}
    assert elem.get("label", onnx.TensorProto.FLOAT) == onnx.TensorProto.FLOAT
    assert g16["asapnet"].model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert g16["g"].model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    ops = {n.op_type: n for n in g16["g"].model.graph.node}
    norm_inputs = [n.input[0] for n in g16["g"].model.graph.node
                   if n.op_type == "InstanceNormalization"]
    gg = g16["g"].model.graph
    types = {v.name: v.type.tensor_type.elem_type for v in list(gg.value_info) + list(gg.output)}
    assert norm_inputs and all(types[i] == onnx.TensorProto.FLOAT for i in norm_inputs)
    convs = [n for n in g16["g"].model.graph.node if n.op_type == "Conv"
             and not any(a.name == "group" and a.i > 1 for a in n.attribute)]
    assert convs and all(types.get(n.output[0]) == onnx.TensorProto.FLOAT16 for n in convs)
    assert "Conv" in ops
    # no precision-losing fp32 -> fp16 -> fp32 round trips are left between FP32 regions
    prod = {o: n for n in gg.node for o in n.output}
    for n in gg.node:
        if n.op_type == "Cast" and n.input[0] in prod and prod[n.input[0]].op_type == "Cast":
            assert types.get(prod[n.input[0]].input[0]) != onnx.TensorProto.FLOAT or \
                n.attribute[0].i != onnx.TensorProto.FLOAT


def test_custom_node_contract(exported):
    gen, mode, _, _, by_prec = exported
    for prec, graphs in by_prec.items():
        m = graphs["asapnet_plugin"].model
        nodes = [n for n in m.graph.node if n.op_type == PLUGIN_OP]
        assert len(nodes) == 1
        attrs = read_node_attributes(m)
        assert attrs["plugin_version"] == PLUGIN_VERSION.encode()
        assert attrs["plugin_namespace"] == PLUGIN_NAMESPACE.encode()
        spec = gen.config.mlp_spec
        assert attrs["in_channels"] == spec.in_channels
        assert attrs["downsampling"] == spec.downsampling
        assert attrs["num_frequencies"] == spec.num_frequencies
        assert attrs["hidden_width"] == spec.hidden_width and attrs["depth"] == spec.depth
        expected_mode = b"one_hot" if (mode == "one-hot" or gen.config.hr_uses_edges) else b"label_ids"
        assert attrs["input_mode"] == expected_mode
        assert [f.name for f in m.functions] == [PLUGIN_OP]
        # the op type must not be a standard ONNX op, or TensorRT would import the built-in
        assert not onnx.defs.has(PLUGIN_OP)


def test_dynamic_batch_runs(exported):
    gen, mode, h, w, by_prec = exported
    from asap_deploy.sample_inputs import generator_feeds
    sess = ort_session(by_prec["fp32"]["asapnet_plugin"].model)
    for b in (1, 3):
        out = sess.run(None, generator_feeds(gen.config, mode, b, h, w, 7))[0]
        assert out.shape == (b, 3, h, w) and np.isfinite(out).all()
