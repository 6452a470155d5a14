"""`explain`: regions of each kind, their grids and where they come from, and every skip with its reason."""

import functools

import pytest
import torch
import torch.nn.functional as F

import toma_fx
from toma_fx import ToMAConfig
from toma_fx.architectures import build, example_inputs

from .helpers import tiny

SMALL = ToMAConfig(min_tokens=16)
SDXL_LATENT = (32, 24)  # non-square, so a transposed grid shows; token levels 16x12 and 8x6


@functools.cache
def explained(name: str, latent: tuple[int, int] = (16, 16), config: ToMAConfig = SMALL):
    """One trace per model, latent and config, shared by the tests that read its report (SDXL's
    UNet takes the longest to trace)."""
    model, inputs = tiny(name, latent=latent)
    return toma_fx.explain(model, **inputs, config=config)


# Tiny configs at a 16x16 latent (SDXL at SDXL_LATENT). SDXL: 11 BasicTransformerBlocks (1 + 2 down,
# 2 mid, 4 + 2 up), each self + cross + GEGLU MLP. Flux: one double block (joint attention, image MLP;
# the text MLP is skipped) and two single blocks. SD3: two joint blocks. PixArt: two blocks of self +
# MLP (its cross attention to 8 text tokens at width 16 saves no FLOPs).
EXPECTED = {
    "sdxl": {"self": 11, "cross": 11, "mlp": 11},
    "flux": {"joint": 1, "mlp": 1, "single": 2},
    "sd3": {"joint": 2, "mlp": 2},
    "pixart": {"self": 2, "mlp": 2},
    "dit": {"self": 2, "mlp": 2},
    "plain-dit": {"self": 2, "mlp": 2},
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_regions_per_kind(name):
    report = explained(name, SDXL_LATENT) if name == "sdxl" else explained(name)
    assert report.counts() == EXPECTED[name], str(report)
    assert not report.errors
    assert report.speedup > 1.05
    for r in report.regions:
        assert r.destinations == r.tokens // 2
        assert r.flops_after < r.flops_before


def test_text_tokens_are_never_merged():
    """Flux: the caption rows are kept (8 of them beside the 64 image rows of the single blocks), and
    the caption MLP is skipped: its 8 rows are fewer than the image input's 64 on the grid."""
    report = explained("flux")
    assert {(r.tokens, r.text) for r in report.regions if r.kind == "single"} == {(64, 8)}
    assert {(r.tokens, r.text) for r in report.regions if r.kind != "single"} == {(64, 0)}
    (skip,) = report.skipped
    assert skip.path == "transformer_blocks.0.ff_context"
    assert (
        "rows of input encoder_hidden_states (8), fewer than another token input's on the grid (64)"
        in skip.why
    )


def test_levels_by_min_tokens():
    """SDXL at a 32x24 latent has 16x12 and 8x6 token levels; min_tokens=192 keeps the first."""
    report = explained("sdxl", SDXL_LATENT, ToMAConfig(min_tokens=192))
    assert {r.tokens for r in report.regions} == {192}
    assert sum("< min_tokens=192" in s.why for s in report.skipped) == 24


def test_groups_select_once_per_token_set():
    report = explained("sdxl", SDXL_LATENT)
    selecting = [r for r in report.regions if r.selection == "select"]
    assert [r.tokens for r in selecting] == [192, 48, 192]  # down 16x12, then 8x6, then up 16x12
    shared = explained("plain-dit")  # one token set through every block
    assert [r.selection for r in shared.regions][:2] == ["select", "reuse #0"]
    unshared = explained("plain-dit", config=SMALL.replace(share_destinations=False))
    assert len(unshared.regions) == len(shared.regions) > 1
    assert all(r.selection == "select" for r in unshared.regions)


def test_report_reads_as_a_table_with_a_diff():
    report = explained("plain-dit")
    text = str(report)
    assert "blocks.0" in text and "FLOP-ideal speedup" in text
    assert "+    merge = toma_fx_ops_nodes_merge(" in report.diff
    assert "unmerge" in report.diff


@pytest.mark.parametrize(
    "name, latent, grids",
    [
        ("flux", (24, 16), {"12x8 (ids: hidden_states)"}),  # packed tokens, placed by img_ids
        ("sdxl", SDXL_LATENT, {"16x12 (graph: sample)", "8x6 (graph: sample)"}),  # the latent map's levels
        ("sd3", (24, 16), {"12x8 (graph: hidden_states)"}),  # a conv patch embedding
    ],
)
def test_grids_and_their_source(name, latent, grids):
    assert {r.grid for r in explained(name, latent).regions} == grids


def test_unplaceable_token_rows_are_left_alone_with_the_reason():
    """Position ids out of raster order place no rows on a grid: nothing is merged (no 1-D fallback),
    and a grid given in the config places them."""
    model = build("flux", "tiny")
    inputs = example_inputs("flux", model, latent=(16, 16))
    inputs["img_ids"] = inputs["img_ids"].flip(0)
    report = toma_fx.explain(model, **inputs, config=SMALL)
    assert not report.regions
    assert all("which nothing places on a grid" in s.why or "no image rows" in s.why for s in report.skipped)
    with_grid = toma_fx.explain(model, **inputs, config=SMALL.replace(grid=(8, 8)))
    assert {r.grid for r in with_grid.regions} == {"8x8 (config: hidden_states)"}


class HandWritten(torch.nn.Module):
    """Attention spelled out (`softmax(q @ k^T) @ v`) and a SwiGLU MLP on a patchified map."""

    def __init__(self, dim=32):
        super().__init__()
        self.embed = torch.nn.Conv2d(4, dim, 2, stride=2)
        self.qkv, self.out = torch.nn.Linear(dim, 3 * dim), torch.nn.Linear(dim, dim)
        self.w1, self.w3, self.w2 = (
            torch.nn.Linear(dim, 96),
            torch.nn.Linear(dim, 96),
            torch.nn.Linear(96, dim),
        )

    def forward(self, latent):
        x = self.embed(latent).flatten(2).transpose(1, 2)
        q, k, v = self.qkv(x).unflatten(-1, (3, 2, -1)).permute(2, 0, 3, 1, 4).unbind(0)
        a = (q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5).softmax(dim=-1) @ v
        x = x + self.out(a.transpose(1, 2).flatten(2))
        return x + self.w2(F.silu(self.w1(x)) * self.w3(x))


def test_hand_written_attention_is_merged():
    report = toma_fx.explain(HandWritten(), torch.randn(2, 4, 32, 32), config=SMALL)
    assert report.counts() == {"self": 1, "mlp": 1}
    assert {r.grid for r in report.regions} == {"16x16 (graph: latent)"}


class LinearAttention(torch.nn.Module):
    """Sana-style: ReLU kernels, `k^T v` summed over the tokens, and a conv feed-forward."""

    def __init__(self, dim=32):
        super().__init__()
        self.embed = torch.nn.Conv2d(4, dim, 2, stride=2)
        self.q, self.k, self.v = (torch.nn.Linear(dim, dim) for _ in range(3))
        self.inv = torch.nn.Conv2d(dim, 64, 1)
        self.dw = torch.nn.Conv2d(64, 64, 3, padding=1, groups=64)
        self.point = torch.nn.Conv2d(64, dim, 1)

    def forward(self, latent):
        x = self.embed(latent).flatten(2).transpose(1, 2)  # (B, N, C)
        q, k, v = F.relu(self.q(x)), F.relu(self.k(x)), self.v(x)
        kv = k.transpose(1, 2) @ v  # (B, C, C): a sum over the tokens
        x = x + (q @ kv) / (q @ k.sum(1, keepdim=True).transpose(1, 2) + 1e-6)
        B, N, C = x.shape
        m = x.transpose(1, 2).unflatten(2, (16, 16))
        return x + self.point(self.dw(F.silu(self.inv(m)))).flatten(2).transpose(1, 2)


def test_what_is_seen_but_left_alone_is_reported():
    report = toma_fx.explain(LinearAttention(), torch.randn(1, 4, 32, 32), config=SMALL)
    assert not report.regions
    whys = {s.why.split(":")[0] for s in report.skipped}
    assert whys == {"linear attention", "a convolutional feed-forward"}


class NarrowCross(torch.nn.Module):
    """Cross attention at width 16 to two text tokens: its projections are cheaper than merging."""

    def __init__(self, dim=16):
        super().__init__()
        self.embed = torch.nn.Conv2d(4, dim, 2, stride=2)
        self.q, self.k, self.v, self.o = (torch.nn.Linear(dim, dim) for _ in range(4))

    def forward(self, latent, text):
        x = self.embed(latent).flatten(2).transpose(1, 2)
        a = F.scaled_dot_product_attention(self.q(x), self.k(text), self.v(text))
        return x + self.o(a)


def test_regions_that_would_cost_more_are_skipped_with_their_flops():
    report = toma_fx.explain(NarrowCross(), torch.randn(1, 4, 32, 32), torch.randn(1, 2, 16), config=SMALL)
    assert not report.regions
    (loss,) = report.skipped
    assert loss.kind == "cross" and loss.why.startswith("merging costs as much as it saves or more: ")
    assert loss.why.endswith("MFLOP")


def test_fullgraph_is_the_compile_s():
    class Breaks(torch.nn.Module):
        def forward(self, x):
            x = x * 2
            torch._dynamo.graph_break()
            return x + 1

    assert toma_fx.explain(Breaks(), torch.randn(2, 3)).graphs == 2
    with pytest.raises(torch._dynamo.exc.Unsupported):
        toma_fx.explain(Breaks(), torch.randn(2, 3), fullgraph=True)


def test_a_block_on_its_own_takes_the_call_grid():
    """A block graph (as regional compilation sees it) has token inputs only: the latent grid of the
    call places them, as `toma_fx.apply` gives it."""
    model, inputs = tiny("flux")
    block = model.single_transformer_blocks[0]
    hidden = torch.randn(2, 64, 32)
    text = torch.randn(2, 8, 32)
    temb = torch.randn(2, 32)
    rope = model.pos_embed(torch.cat([inputs["txt_ids"], inputs["img_ids"]]))
    args = dict(hidden_states=hidden, encoder_hidden_states=text, temb=temb, image_rotary_emb=rope)
    assert not toma_fx.explain(block, **args, config=SMALL).regions
    report = toma_fx.explain(block, **args, config=SMALL, call_grid=(8, 8))
    assert {r.grid for r in report.regions} == {"8x8 (call: hidden_states)"}
