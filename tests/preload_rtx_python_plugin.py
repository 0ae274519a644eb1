"""Imported by the engine-build child process in test_errors_engine.py (BuildOptions.preload):
registers the Python ASAP_SpatialMLP creator with TensorRT for RTX, the combination whose ONNX
parser aborts the process (SIGABRT) on a graph holding the node (seen with 1.7.1)."""

from asap_deploy.engine.python_plugin import register_python_plugin
from asap_deploy.engine.trt_module import import_tensorrt

register_python_plugin(import_tensorrt("tensorrt_rtx")[0])
