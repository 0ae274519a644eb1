"""The plugin's machine-readable spec, the C++ plugin and the exporter's node agree."""

import json
import re
import shutil
from pathlib import Path

import pytest

from asap_deploy import build_plugin
from asap_deploy.config import GeneratorConfig
from asap_deploy.errors import MissingDependencyError
from asap_deploy.onnx_export import plugin_node

ROOT = Path(__file__).resolve().parents[1]
SPEC = json.loads((ROOT / "engines/plugin/spatialMLPPlugin/spatialMLPPlugin.json").read_text())
CPP = (ROOT / "engines/plugin/spatialMLPPlugin/spatialMLPPlugin.cpp").read_text()
HDR = (ROOT / "engines/plugin/spatialMLPPlugin/spatialMLPPlugin.h").read_text()


def test_identity_matches_exporter_and_cpp():
    assert SPEC["op_type"] == plugin_node.PLUGIN_OP
    assert SPEC["plugin_version"] == plugin_node.PLUGIN_VERSION
    assert SPEC["plugin_namespace"] == plugin_node.PLUGIN_NAMESPACE
    assert SPEC["onnx_domain"] == plugin_node.PLUGIN_DOMAIN
    assert f'kPluginName = "{plugin_node.PLUGIN_OP}"' in HDR
    assert f'kPluginVersion = "{plugin_node.PLUGIN_VERSION}"' in HDR
    assert f'kPluginNamespace = "{plugin_node.PLUGIN_NAMESPACE}"' in HDR


@pytest.mark.parametrize("mode", ["one_hot", "label_ids"])
def test_attributes_match_exporter_and_cpp(mode):
    exported = plugin_node.node_attributes(GeneratorConfig(), mode)
    names = [a["name"] for a in SPEC["attributes"]]
    assert sorted(names) == sorted(exported)
    for a in SPEC["attributes"]:
        assert isinstance(exported[a["name"]], int if a["type"] == "int" else str)
    cpp_fields = re.findall(r'\{"(\w+)", &AsapMLPShape::\w+, (?:true|false)\}', CPP)
    assert sorted(cpp_fields + ["input_mode"]) == sorted(names)
    assert (
        exported["input_mode"] in next(a for a in SPEC["attributes"] if a["name"] == "input_mode")["values"]
    )


def test_plugin_compiles_against_tensorrt_headers(tmp_path):
    if shutil.which("nvcc") is None:
        pytest.skip("nvcc (CUDA toolkit) not installed")
    try:
        root = build_plugin.find_tensorrt(None)
    except MissingDependencyError as exc:
        pytest.skip(f"TensorRT headers not installed (set TensorRT_ROOT): {exc}")
    for registration in build_plugin.PLUGIN_LIBRARIES:
        build_plugin.build_trt_plugin(tmp_path, root, archs=("90",), link=False, registration=registration)
