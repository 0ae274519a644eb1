"""asap_deploy: export, fuse and benchmark ASAP-Net generators (ONNX Runtime, TensorRT)."""
__version__ = "0.1.0"
