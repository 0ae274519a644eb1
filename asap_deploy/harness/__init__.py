"""Parity and latency harness: model sources, trtexec-style timing, reports."""
