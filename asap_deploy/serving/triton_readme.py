"""The repository's README: what it holds, the exact launch lines, requests, plugin caveats."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from .triton_config import ModelSpec, TensorSpec

CONTAINER_ROOT = "/models"


def plugin_paths(root: str, models: Sequence[ModelSpec]) -> List[str]:
    return [f"{root}/{m.name}/{m.plugin}" for m in models if m.plugin]


def launch_command(root: str, models: Sequence[ModelSpec]) -> str:
    """``tritonserver`` with the repository at ``root`` and every plugin loaded by the backend."""
    cmd = ["tritonserver", f"--model-repository={root}"]
    plugins = plugin_paths(root, models)
    if plugins:
        # the backend splits the list on ';' itself, so the shell must not see it
        cmd.append(f"--backend-config=tensorrt,plugins={';'.join(plugins)}")
    return " ".join(shlex.quote(c) for c in cmd)


def preload_command(root: str, models: Sequence[ModelSpec]) -> Optional[str]:
    plugins = plugin_paths(root, models)
    if not plugins:
        return None
    return (
        f"LD_PRELOAD={shlex.quote(':'.join(plugins))} tritonserver "
        f"{shlex.quote('--model-repository=' + root)}"
    )


def docker_command(repo: Path, models: Sequence[ModelSpec]) -> str:
    gpu = any(m.kind == "KIND_GPU" for m in models)
    return " \\\n  ".join(
        [
            f"docker run --rm{' --gpus all' if gpu else ''} -p 8000:8000 -p 8001:8001 -p 8002:8002",
            f"-v {shlex.quote(str(repo))}:{CONTAINER_ROOT}:ro",
            "nvcr.io/nvidia/tritonserver:<YY.MM>-py3",
            launch_command(CONTAINER_ROOT, models),
        ]
    )


def _shape(t: TensorSpec, batched: bool) -> str:
    return " x ".join((["B"] if batched else []) + [str(d) if d >= 0 else "?" for d in t.dims])


def _tensors(ts: Sequence[TensorSpec], batched: bool) -> str:
    return "<br>".join(f"`{t.name}` {t.data_type[5:]} {_shape(t, batched)}" for t in ts)


def client_snippet(model: ModelSpec, port: int = 8001) -> str:
    """Python that sends one zero input to ``model`` over gRPC and turns the answer into pixels."""
    np_types = {
        "TYPE_FP32": "np.float32",
        "TYPE_FP16": "np.float16",
        "TYPE_INT32": "np.int32",
        "TYPE_INT64": "np.int64",
        "TYPE_UINT8": "np.uint8",
    }
    lines = [
        "import numpy as np",
        "import tritonclient.grpc as grpcclient",
        "",
        f'client = grpcclient.InferenceServerClient("127.0.0.1:{port}")',
        "inputs = []",
    ]
    for t in model.inputs:
        shape = ", ".join(str(d) for d in (1, *t.dims))
        what = {
            "label": "one-hot label map (one channel per class)",
            "label_map": "class id per pixel (255 = don't care)",
            "instance_map": "instance id per pixel",
        }.get(t.name, "model input")
        lines += [
            f"{t.name} = np.zeros(({shape}), {np_types[t.data_type]})  # {what}",
            f'inputs.append(grpcclient.InferInput("{t.name}", {t.name}.shape, "{t.data_type[5:]}"))',
            f"inputs[-1].set_data_from_numpy({t.name})",
        ]
    out = model.outputs[0].name
    lines += [
        f'{out} = client.infer("{model.name}", inputs).as_numpy("{out}")  # in [-1, 1]',
        "# what the authors' test.py saves: (x + 1) / 2 * 255, truncated to uint8, HWC",
        f"pixels = ((np.asarray({out}[0], np.float32).transpose(1, 2, 0) + 1) / 2 * 255).astype(np.uint8)",
    ]
    return "\n".join(lines)


def _inputs_text(record: Dict[str, Any]) -> str:
    cfg = record.get("config") or {}
    if record.get("input_mode") == "labels":
        text = (
            "`label_map`: int32 class id per pixel (255 = don't care, read as class "
            f"{cfg.get('label_nc', 'label_nc')})"
        )
        if cfg.get("instance_edge"):
            text += "; `instance_map`: int32 instance id per pixel (edges are computed in the model)"
        return "Inputs: " + text + ". `image`: float32 in [-1, 1]."
    parts = [f"{cfg.get('label_nc', 'label_nc')} class channels"]
    if cfg.get("contain_dontcare_label"):
        parts.append("1 don't-care channel")
    if cfg.get("instance_edge"):
        parts.append("the instance-edge map last")
    return (
        f"Inputs: `label`: float32 one-hot label map, as the authors' generator receives it "
        f"({', '.join(parts)}). `image`: float32 in [-1, 1]."
    )


def render_readme(
    repo: Path,
    models: Sequence[ModelSpec],
    record: Dict[str, Any],
    command: str,
    engine: Optional[Dict[str, Any]],
) -> str:
    root = str(repo)
    rows = "\n".join(
        f"| `{m.name}` | {m.platform} | `{m.name}/1/{m.model_file}` | {m.precision} | "
        f"{_tensors(m.inputs, True)} | {_tensors(m.outputs, True)} | {m.max_batch_size} | "
        f"{m.instances} x {m.kind} |"
        for m in models
    )
    text = [
        f"# Triton model repository ({record['height']}x{record['width']}, input {record['input_mode']})",
        "",
        f"Written by `{command}` (asap_deploy {record['asap_deploy']}) from the export "
        f"`{record['export']}`. Every `config.pbtxt` was parsed with Triton's model-configuration "
        f"schema (tritonclient {record.get('tritonclient', '?')}) and its inputs and outputs "
        f"checked against the model files. Check it again after editing:",
        "",
        "```",
        f"python -m asap_deploy.triton --check {shlex.quote(root)}",
        "```",
        "",
        "asap_deploy validated this repository offline only: it was not loaded by a Triton server here.",
        "",
        "## Models",
        "",
        "| model | platform | file | precision | inputs | outputs | max batch | instances |",
        "|---|---|---|---|---|---|---|---|",
        rows,
        "",
        "B is the batch axis: Triton's dynamic batcher gathers single requests into batches of up "
        "to the max batch, waiting at most "
        f"{models[0].max_queue_delay_us} µs for more; a request may also carry a batch of its own. "
        "Each model is warmed up with one all-zero request when it loads.",
        "",
        "## Launch",
        "",
        "```",
        launch_command(root, models),
        "```",
    ]
    pre = preload_command(root, models)
    if pre:
        text += [
            "",
            "or, loading the plugin into the whole process instead of through the TensorRT backend:",
            "",
            "```",
            pre,
            "```",
        ]
    text += [
        "",
        f"In NVIDIA's container, with this folder mounted at `{CONTAINER_ROOT}`:",
        "",
        "```",
        docker_command(repo, models),
        "```",
        "",
    ]
    if engine:
        text += [
            f"`<YY.MM>`: the Triton release whose TensorRT is exactly "
            f"{engine['tensorrt_version']} (Triton's release notes list the TensorRT of "
            f"each release); see the caveat below.",
            "",
        ]
    else:
        text += ["`<YY.MM>`: any recent Triton release with the ONNX Runtime backend.", ""]
    if any(m.kind == "KIND_GPU" and m.platform == "onnxruntime_onnx" for m in models):
        text += [
            "The ONNX Runtime models run on the GPU (`KIND_GPU`, CUDA execution provider); "
            "on a server without one, regenerate with `--onnx-device cpu`.",
            "",
        ]
    if engine:
        gpu = engine.get("gpu")
        built_on = (
            f"{gpu['name']} (compute capability {gpu['compute_capability']})" if gpu else "no GPU recorded"
        )
        text += [
            "## TensorRT version caveat",
            "",
            f"- `{engine['model']}/1/model.plan` was built with TensorRT "
            f"{engine['tensorrt_version']} on {built_on}, {engine['precision']}. A TensorRT engine "
            f"deserialises only in the exact TensorRT version that built it, on a GPU of the same "
            f"compute capability: the Triton release must ship TensorRT "
            f"{engine['tensorrt_version']}.",
        ]
        if engine.get("plugin_library"):
            text += [
                f"- The engine contains `ASAP_SpatialMLP` plugin layers, so Triton must load "
                f"`{engine['model']}/{engine['plugin_library']}` before the model (the launch "
                f"lines above do). The plugin library is linked against the libnvinfer of the "
                f"TensorRT it was built with: a plan and its plugin must be used with the exact "
                f"TensorRT version that built them. To move to another Triton release, rebuild "
                f"both against that release's TensorRT (`python -m asap_deploy.build_plugin "
                f"--tensorrt-root TENSORRT_ROOT`, then `python -m asap_deploy.build MODEL.onnx "
                f"--module tensorrt --plugin build/engines/libasap_trt_plugin.so`) on the "
                f"serving GPU and regenerate this repository.",
                "- Triton only logs a plugin library it cannot open and carries on; the model then "
                "fails to load with a deserialisation error about `ASAP_SpatialMLP`. Look for the "
                "plugin path in the server log first.",
            ]
        text += [f"- {note}" for note in engine.get("notes", [])]
        text.append("")
    text += ["## Requests", ""]
    for m in models[:1]:
        text += [
            f'Python (gRPC, `pip install "tritonclient[grpc]"`), one request to `{m.name}`:',
            "",
            "```python",
            client_snippet(m),
            "```",
            "",
        ]
    text += [_inputs_text(record), ""]
    return "\n".join(text)
