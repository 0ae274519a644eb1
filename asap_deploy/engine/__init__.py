"""ONNX -> TensorRT engine: module selection, Python plugin, builder, loader (all import TensorRT lazily)."""
