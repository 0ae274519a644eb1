"""The parameter layout and the encoding: the single source of truth, checked against the paper
configurations and the independent oracle."""

import pytest
import torch
from reference_asapnet import reference_coords

from asap_deploy.config import GeneratorConfig
from asap_deploy.mlp_spec import MLPSpec


@pytest.mark.parametrize(
    "hr_in,s,expected", [(35, 16, 16003), (35, 32, 16259), (35, 64, 16515), (13, 32, 14851), (13, 64, 15107)]
)
def test_num_params_of_paper_settings(hr_in, s, expected):
    assert MLPSpec(hr_in, s).num_params == expected


def test_cityscapes_offsets_are_bias_first():
    spec = MLPSpec(35, 16)
    assert [(l.bias_offset, l.weight_offset) for l in spec.layers] == [
        (0, 64),
        (3328, 3392),
        (7488, 7552),
        (11648, 11712),
        (15808, 15811),
    ]
    assert [l.end for l in spec.layers] == [3328, 7488, 11648, 15808, 16003]


@pytest.mark.parametrize("s", [16, 32, 64])
def test_encoding_tile_equals_authors_coords_everywhere(s):
    spec = MLPSpec(3, s)
    h, w = 16 * s, 2 * s * 3
    full = reference_coords(1, h, w, s)[0]  # (C, H, W)
    tile = spec.positional_encoding_tile().T.reshape(spec.pe_channels, s, s)
    tiled = tile.repeat(1, h // s, w // s)
    assert torch.equal(tiled, full)  # bit-exact, not just close


def test_solve_first_width_inverts_num_params():
    for spec in (MLPSpec(35, 64), MLPSpec(13, 32, 32, 4, 1)):
        assert (
            MLPSpec.solve_first_width(spec.num_params, spec.hidden_width, spec.depth, spec.out_channels)
            == spec.channels[0]
        )


def test_plugin_attributes_round_trip():
    spec = MLPSpec(35, 64, 48, 6, 3)
    assert MLPSpec.from_plugin_attributes(spec.plugin_attributes()) == spec


@pytest.mark.parametrize(
    "bad", [dict(downsampling=24), dict(downsampling=8), dict(padding="circular"), dict(hr_depth=1)]
)
def test_invalid_configs_are_rejected(bad):
    from asap_deploy.errors import ConfigError

    with pytest.raises(ConfigError):
        GeneratorConfig(**bad)


def test_cited_test_files_exist():
    """Docs and docstrings that say a test backs them name a file that exists."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    cited = {}
    for path in [
        root / "README.md",
        *root.glob("asap_deploy/**/*.py"),
        *root.glob("engines/**/*"),
        *root.glob("export/*.md"),
        *root.glob("benchmarks/*.md"),
    ]:
        if path.is_file() and path.suffix in (".py", ".md", ".h", ".cpp", ".cu"):
            for m in re.finditer(r"tests/(\w+\.py)", path.read_text(errors="replace")):
                cited.setdefault(m.group(1), set()).add(str(path.relative_to(root)))
    assert cited, "no citation found: the search itself is broken"
    missing = {f: sorted(by) for f, by in cited.items() if not (root / "tests" / f).is_file()}
    assert missing == {}, f"cited test files do not exist: {missing}"


# -- boundaries and messages (each found by mutation testing, tests/mutation/) ----------------
@pytest.mark.parametrize("s", [2, 4, 16, 64, 256])
def test_every_power_of_two_from_2_is_a_valid_s(s):
    spec = MLPSpec(1, s, hidden_width=1, depth=2, out_channels=1)  # the smallest legal MLP
    assert spec.num_frequencies == s.bit_length() - 1
    assert spec.periods[-1] == 2


@pytest.mark.parametrize("s", [0, 1, 3, 6, 24, -4])
def test_other_s_are_rejected_with_the_rule(s):
    with pytest.raises(
        ValueError,
        match=rf"^downsampling factor S must be a power of two >= 2, "
        rf"got {s}$",
    ):
        MLPSpec(3, s)


@pytest.mark.parametrize("field", ["in_channels", "hidden_width", "out_channels"])
def test_each_width_must_be_positive_on_its_own(field):
    kw = dict(in_channels=3, downsampling=16, hidden_width=8, depth=3, out_channels=3)
    kw[field] = 0
    with pytest.raises(ValueError, match=r"^MLP widths must be positive: MLPSpec\("):
        MLPSpec(**kw)


def test_depth_below_two_is_rejected_with_the_rule():
    assert MLPSpec(3, 16, depth=2).channels == [3 + 16, 64, 3]
    with pytest.raises(ValueError, match=r"^MLP depth \(hr_depth\) must be >= 2, got 1$"):
        MLPSpec(3, 16, depth=1)


def test_plugin_attributes_are_exactly_the_node_attributes():
    assert MLPSpec(13, 32, 48, 6, 1).plugin_attributes() == {
        "in_channels": 13,
        "hidden_width": 48,
        "depth": 6,
        "out_channels": 1,
        "downsampling": 32,
        "num_frequencies": 5,
    }


def test_from_plugin_attributes_reads_every_field_and_checks_frequencies():
    attrs = MLPSpec(13, 32, 48, 6, 1).plugin_attributes()
    assert MLPSpec.from_plugin_attributes(attrs) == MLPSpec(13, 32, 48, 6, 1)
    del attrs["num_frequencies"]  # optional: derived from downsampling
    assert MLPSpec.from_plugin_attributes(attrs) == MLPSpec(13, 32, 48, 6, 1)
    with pytest.raises(ValueError, match=r"^num_frequencies must equal log2\(downsampling\)$"):
        MLPSpec.from_plugin_attributes({**attrs, "num_frequencies": 4})


def test_solve_first_width_edges():
    spec = MLPSpec(1, 2, hidden_width=8, depth=3, out_channels=3)  # C0 = 1 + 4 = 5
    rest = spec.num_params - (spec.channels[0] + 1) * 8
    solve = MLPSpec.solve_first_width
    got = solve(spec.num_params, 8, 3, 3)
    assert got == 5 and type(got) is int
    assert solve(rest + 2 * 8, 8, 3, 3) == 1  # the smallest first width
    assert solve(rest + 1 * 8, 8, 3, 3) is None  # C0 = 0
    assert solve(rest, 8, 3, 3) is None  # nothing left for the first layer
    assert solve(rest + 2 * 8 + 1, 8, 3, 3) is None  # not a multiple of the width
