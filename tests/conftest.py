import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from asap_deploy.config import GeneratorConfig  # noqa: E402
from asap_deploy.demo import demo_generator  # noqa: E402


def small_config(**kw) -> GeneratorConfig:
    """Paper structure at toy widths: fast on a CPU, same code paths."""
    base = dict(label_nc=5, downsampling=32, lr_width=8, lr_max_width=16, lr_depth=2, hr_width=16)
    base.update(kw)
    return GeneratorConfig(**base)


@pytest.fixture
def small_generator():
    return demo_generator(small_config(), seed=3)


@pytest.fixture(autouse=True)
def _no_grad():
    with torch.no_grad():
        yield
