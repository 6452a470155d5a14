"""`explain` finds the expected regions of each kind in every supported architecture."""

import pytest
import torch

import toma_fx
from toma_fx import ToMAConfig
from toma_fx.architectures import build, example_inputs

from .helpers import tiny

SMALL = ToMAConfig(min_tokens=16)

# Tiny configs at a 16x16 latent. SDXL: 11 BasicTransformerBlocks (1 + 2 down, 2 mid, 4 + 2 up), each
# self + cross + GEGLU MLP. Flux: one double block (joint attention, image MLP; the text MLP is skipped)
# and two single blocks (the second reads text and image back from the first's slices). SD3: two joint
# blocks. PixArt: two blocks of self + cross + MLP.
EXPECTED = {
    "sdxl": {"self": 11, "cross": 11, "mlp": 11},
    "flux": {"joint": 1, "mlp": 1, "single": 2},
    "sd3": {"joint": 2, "mlp": 2},
    "pixart": {"self": 2, "cross": 2, "mlp": 2},
    "dit": {"self": 2, "mlp": 2},
    "plain-dit": {"self": 2, "mlp": 2},
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_regions_per_kind(name):
    model, inputs = tiny(name)
    report = toma_fx.explain(model, **inputs, config=SMALL)
    assert report.counts() == EXPECTED[name], str(report)
    assert not report.errors
    assert report.speedup > 1.05
    assert sum(r.flops_after for r in report.regions) < sum(r.flops_before for r in report.regions)
    for r in report.regions:
        assert r.destinations == r.tokens // 2


def test_text_tokens_are_never_merged():
    model, inputs = tiny("flux")
    report = toma_fx.explain(model, **inputs, config=SMALL)
    assert [s.why for s in report.skipped] == ["text tokens are never merged"]
    single = next(r for r in report.regions if r.kind == "single")
    assert (single.tokens, single.text) == (64, 8)


def test_levels_by_min_tokens():
    """SDXL at a 32x32 latent has 16x16 and 8x8 token levels; min_tokens=256 keeps the first."""
    model, inputs = tiny("sdxl", latent=(32, 32))
    report = toma_fx.explain(model, **inputs, config=ToMAConfig(min_tokens=256))
    assert report.counts() == {"self": 3, "cross": 3, "mlp": 3}
    assert {r.tokens for r in report.regions} == {256}
    assert sum("< min_tokens=256" in s.why for s in report.skipped) == 24


def test_groups_select_once_per_token_set():
    model, inputs = tiny("sdxl", latent=(32, 32))
    report = toma_fx.explain(model, **inputs, config=SMALL)
    selecting = [r for r in report.regions if r.selection == "select"]
    # down 16x16, then 8x8 (down, mid, up), then up 16x16
    assert [r.tokens for r in selecting] == [256, 64, 256]
    unshared = toma_fx.explain(model, **inputs, config=SMALL.replace(share_destinations=False))
    assert all(r.selection == "select" for r in unshared.regions)


def test_report_reads_as_a_table_with_a_diff():
    model, inputs = tiny("plain-dit")
    report = toma_fx.explain(model, **inputs, config=SMALL)
    text = str(report)
    assert "blocks.0" in text and "FLOP-ideal speedup" in text
    assert "+    merge = toma_fx_ops_nodes_merge(" in report.diff
    assert "unmerge" in report.diff


def test_grids_come_from_the_graph_the_ids_or_the_config():
    model, inputs = tiny("flux", latent=(24, 16))
    assert {r.grid for r in toma_fx.explain(model, **inputs, config=SMALL).regions} == {"12x8 (ids)"}
    model, inputs = tiny("sdxl", latent=(24, 16))
    grids = {r.grid for r in toma_fx.explain(model, **inputs, config=SMALL).regions}
    assert grids == {"12x8 (graph)", "6x4 (graph)"}


def test_stripes_without_a_grid():
    model = build("flux", "tiny")
    inputs = example_inputs("flux", model, latent=(16, 16))
    inputs["img_ids"] = inputs["img_ids"].flip(0)  # not raster order: no grid can be read
    report = toma_fx.explain(model, **inputs, config=SMALL)
    assert {r.grid for r in report.regions} == {"1x64 (stripes)"}
    with_grid = toma_fx.explain(model, **inputs, config=SMALL.replace(grid=(8, 8)))
    assert {r.grid for r in with_grid.regions} == {"8x8 (config)"}


def test_attention_the_pass_cannot_see_is_left_alone():
    """Hand-written softmax attention has no SDPA anchor: only the MLPs are merged, nothing breaks."""

    class ManualAttention(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv, self.fc1, self.fc2 = (
                torch.nn.Linear(8, 24),
                torch.nn.Linear(8, 32),
                torch.nn.Linear(32, 8),
            )

        def forward(self, x):
            q, k, v = self.qkv(x).chunk(3, dim=-1)
            x = x + (q @ k.mT / 8**0.5).softmax(-1) @ v
            return x + self.fc2(torch.nn.functional.gelu(self.fc1(x)))

    report = toma_fx.explain(ManualAttention(), torch.randn(1, 64, 8), config=SMALL)
    assert report.counts() == {"mlp": 1}
