"""Merge and unmerge as scaled-dot-product attention, against the assignment form and a plain reference."""

import pytest
import torch
import torch.nn.functional as F

from toma_fx.ops import TileLayout, merge_sdpa, merge_weights, select_destinations, unmerge, unmerge_sdpa

GRIDS = [
    pytest.param((8, 8), (4, 4), id="divisible"),
    pytest.param((10, 7), (4, 3), id="non-divisible"),  # four blocks, 1x1 corner tile
]


@pytest.mark.parametrize("grid, tile", GRIDS)
@pytest.mark.parametrize("tau, tol", [(5.0, 1e-5), (1000.0, 1e-4)])  # tau scales the cosines' rounding
def test_unmerge_sdpa_equals_assignment_unmerge(grid, tile, tau, tol):
    """Softmax over destinations is U = A^T: both unmerges agree on the same metric, dst and tau."""
    torch.manual_seed(0)
    layout = TileLayout(grid, tile, 0.5)
    metric = torch.randn(2, layout.num_tokens, 8)
    dst = select_destinations(metric, layout)
    y = torch.randn(2, layout.num_merged, 6)
    expected = unmerge(y, merge_weights(metric, dst, layout, tau=tau), layout)
    torch.testing.assert_close(unmerge_sdpa(y, metric, dst, layout, tau=tau), expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("grid, tile", GRIDS)
def test_merge_sdpa_ratio_zero_is_identity(grid, tile):
    """Every token a destination, tau = 1000, distinct random features: merge_sdpa returns the tokens."""
    torch.manual_seed(0)
    layout = TileLayout(grid, tile, 0.0)
    x = torch.randn(2, layout.num_tokens, 16)
    y = merge_sdpa(x, x, select_destinations(x, layout), layout)
    tiled = layout.join_merged(layout.split(x))  # merged tokens come in tile order
    torch.testing.assert_close(y, tiled, rtol=0, atol=1e-5)


def test_merge_sdpa_matches_plain_softmax_reference():
    """merge_sdpa = softmax over the tile's tokens of tau * cos(destination, token), times the tokens."""
    torch.manual_seed(0)
    tau = 5.0
    layout = TileLayout((8, 8), (4, 4), 0.75)  # one block of 4 tiles, 4 destinations each
    x, metric = torch.randn(2, 64, 6), torch.randn(2, 64, 8)
    dst = select_destinations(metric, layout)
    (xt,), (mt,), (idx,) = layout.split(x), layout.split(metric), dst  # (B, T, S, .) and (B, T, K)
    B, T, K = idx.shape
    expected = torch.empty(B, T, K, 6)
    for b in range(B):
        for t in range(T):
            tokens = F.normalize(mt[b, t], dim=-1)  # (S, C)
            cos = tokens[idx[b, t]] @ tokens.T  # (K, S)
            expected[b, t] = (tau * cos).softmax(dim=-1) @ xt[b, t]
    y = merge_sdpa(x, metric, dst, layout, tau=tau)
    torch.testing.assert_close(y, expected.flatten(1, 2), rtol=1e-5, atol=1e-5)


def test_bf16_shapes_and_dtypes():
    """bf16 tokens stay bf16 through merge_sdpa and unmerge_sdpa, with the layout's lengths."""
    torch.manual_seed(0)
    layout = TileLayout((10, 7), (4, 3), 0.5)
    x = torch.randn(2, layout.num_tokens, 8, dtype=torch.bfloat16)
    dst = select_destinations(x, layout)
    y = merge_sdpa(x, x, dst, layout)
    assert y.dtype == torch.bfloat16 and y.shape == (2, layout.num_merged, 8)
    out = unmerge_sdpa(y, x, dst, layout)
    assert out.dtype == torch.bfloat16 and out.shape == (2, layout.num_tokens, 8)
    assert out.isfinite().all()


def test_bad_tau_raises():
    """Both SDPA ops refuse a tau that is not > 0."""
    layout = TileLayout((4, 4), (2, 2), 0.5)
    x = torch.randn(1, 16, 4)
    dst = select_destinations(x, layout)
    with pytest.raises(ValueError, match="tau"):
        merge_sdpa(x, x, dst, layout, tau=0.0)
    with pytest.raises(ValueError, match="tau"):
        unmerge_sdpa(torch.randn(1, layout.num_merged, 4), x, dst, layout, tau=-1.0)
