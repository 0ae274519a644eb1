"""PyTorch re-implementation of the ASAP-Net generator (state-dict compatible with the authors')."""

from .generator import ASAPNetGenerator
from .label_encoding import InputEncoder, LabelEncoder, RGBEncoder

__all__ = ["ASAPNetGenerator", "InputEncoder", "LabelEncoder", "RGBEncoder"]
