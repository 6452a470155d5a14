"""Merge and unmerge in the assignment form: weights, inverses, dtypes and hand-checked values."""

import math

import pytest
import torch

from toma_fx.ops import TileLayout, merge, merge_weights, select_destinations, unmerge

GRIDS = [
    pytest.param((8, 8), (4, 4), id="divisible"),
    pytest.param((10, 7), (4, 3), id="non-divisible"),  # four blocks, 1x1 corner tile
]


def merge_unmerge(x, weights, layout):
    return unmerge(merge(x, weights, layout), weights, layout)


@pytest.mark.parametrize("grid, tile", GRIDS)
def test_ratio_zero_is_identity(grid, tile):
    """Every token a destination, tau = 1000: merge -> unmerge gives x back."""
    torch.manual_seed(0)
    layout = TileLayout(grid, tile, 0.0)
    x = torch.randn(2, layout.num_tokens, 16)
    dst = select_destinations(x, layout)
    assert all(d.shape[-1] == b.tile_size for d, b in zip(dst, layout.blocks))
    weights = merge_weights(x, dst, layout)
    tiled = layout.join_merged(layout.split(x))  # merged tokens come in tile order
    torch.testing.assert_close(merge(x, weights, layout), tiled, rtol=0, atol=1e-5)
    torch.testing.assert_close(merge_unmerge(x, weights, layout), x, rtol=0, atol=1e-5)


@pytest.mark.parametrize("grid, tile", GRIDS)
@pytest.mark.parametrize("ratio", [0.5, 0.75])
def test_hard_assignment_unmerge_is_right_inverse(grid, tile, ratio):
    """Hard weights: M @ U = I per tile, so merge -> unmerge is idempotent (a projection)."""
    torch.manual_seed(0)
    layout = TileLayout(grid, tile, ratio)
    x = torch.randn(2, layout.num_tokens, 8)
    weights = merge_weights(x, select_destinations(x, layout), layout, hard=True)
    for A, b in zip(weights, layout.blocks):
        M, U = A / A.sum(-1, keepdim=True), A.mT
        torch.testing.assert_close(M @ U, torch.eye(b.keep).expand_as(M @ U), rtol=0, atol=1e-6)
    once = merge_unmerge(x, weights, layout)
    torch.testing.assert_close(merge_unmerge(once, weights, layout), once, rtol=0, atol=1e-6)


@pytest.mark.parametrize("fill", [0.0, 1.5], ids=["all-zero", "all-identical"])
def test_hard_assignment_with_duplicate_tokens(fill):
    """A tile of identical (or zero) tokens: no NaN, no empty cluster, M @ U = I."""
    torch.manual_seed(0)
    layout = TileLayout((4, 8), (4, 4), 0.5)
    x = torch.randn(1, layout.num_tokens, 8)
    tiles = layout.split(x)
    tiles[0][:, 0] = fill  # the first tile: 16 equal tokens
    x = layout.join(tiles)
    dst = select_destinations(x, layout)
    assert all(d.unique().numel() == d.numel() for d in dst[0][0])  # distinct destinations per tile
    (A,) = merge_weights(x, dst, layout, hard=True)
    assert (A.sum(-1) >= 1).all()
    M = A / A.sum(-1, keepdim=True)
    torch.testing.assert_close(M @ A.mT, torch.eye(A.shape[-2]).expand(1, 2, -1, -1), rtol=0, atol=1e-6)
    out = merge_unmerge(x, [A], layout)
    assert not out.isnan().any()
    torch.testing.assert_close(layout.split(out)[0][:, 0], tiles[0][:, 0])  # equal tokens survive


@pytest.mark.parametrize("hard", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_weights_shapes_and_dtypes(hard, dtype):
    """A is fp32, columns summing to 1; merge and unmerge keep the dtype and give the layout's shapes."""
    torch.manual_seed(0)
    layout = TileLayout((10, 7), (4, 3), 0.5)
    x = torch.randn(2, layout.num_tokens, 8, dtype=dtype)
    weights = merge_weights(x, select_destinations(x, layout), layout, tau=5.0, hard=hard)
    for A, b in zip(weights, layout.blocks):
        assert A.dtype == torch.float32
        assert A.shape == (2, b.num_tiles, b.keep, b.tile_size)
        torch.testing.assert_close(A.sum(-2), torch.ones(2, b.num_tiles, b.tile_size))
    y = merge(x, weights, layout)
    assert y.dtype == dtype and y.shape == (2, layout.num_merged, 8)
    out = unmerge(y, weights, layout)
    assert out.dtype == dtype and out.shape == (2, layout.num_tokens, 8)


@pytest.mark.parametrize("grid, tile", GRIDS)
def test_unmerge_commutes_with_affine_maps(grid, tile):
    """Soft weights (tau = 5): rows of U sum to 1, so unmerge(y W + b) = unmerge(y) W + b."""
    torch.manual_seed(0)
    layout = TileLayout(grid, tile, 0.5)
    x = torch.randn(2, layout.num_tokens, 8)
    weights = merge_weights(x, select_destinations(x, layout), layout, tau=5.0)
    assert any((A.amax(-2) < 0.9).any() for A in weights)  # soft: some tokens split between destinations
    for A in weights:
        torch.testing.assert_close(A.mT.sum(-1), torch.ones(A.shape[:2] + A.shape[-1:]))
    y = torch.randn(2, layout.num_merged, 8)
    W, bias = torch.randn(8, 5), torch.randn(5)
    torch.testing.assert_close(
        unmerge(y @ W + bias, weights, layout), unmerge(y, weights, layout) @ W + bias, rtol=1e-5, atol=1e-5
    )


def test_hard_merge_values_by_hand():
    """One 2x2 tile, two well-separated clusters {0, 1} and {2, 3}: merged tokens are the cluster means."""
    layout = TileLayout((2, 2), (2, 2), 0.5)
    metric = torch.tensor([[[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]]])
    x = torch.tensor([[[1.0, -2.0], [3.0, 4.0], [10.0, 0.0], [20.0, 1.0]]])
    dst = [torch.tensor([[[0, 2]]])]
    (A,) = merge_weights(metric, dst, layout, hard=True)
    assert A.tolist() == [[[[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]]]]
    y = merge(x, [A], layout)
    assert y.tolist() == [[[2.0, 1.0], [15.0, 0.5]]]
    assert unmerge(y, [A], layout).tolist() == [[[2.0, 1.0], [2.0, 1.0], [15.0, 0.5], [15.0, 0.5]]]


@pytest.mark.parametrize("tau", [0, -1.0, math.inf, math.nan])
def test_bad_tau_raises(tau):
    """tau must be finite and > 0."""
    layout = TileLayout((4, 4), (2, 2), 0.5)
    x = torch.randn(1, 16, 4)
    dst = select_destinations(x, layout)
    with pytest.raises(ValueError, match="tau"):
        merge_weights(x, dst, layout, tau=tau)
