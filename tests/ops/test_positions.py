"""Per-token tables gathered at the destinations, in merge's output order."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from toma_fx.ops import TileLayout, gather_positions, merge, select_destinations

LAYOUTS = [
    pytest.param(TileLayout((8, 8), (4, 4), 0.75), id="divisible"),
    pytest.param(TileLayout((10, 7), (4, 3), 0.5), id="non-divisible"),  # four blocks
    pytest.param(TileLayout((70,), (16,), 0.5), id="1d-remainder"),
    pytest.param(TileLayout((3, 6, 5), (2, 4, 4), 0.5), id="3d-non-divisible"),
]


def destinations(layout, batch=2, seed=0):
    torch.manual_seed(seed)
    return select_destinations(torch.randn(batch, layout.num_tokens, 8), layout)


def raster_indices(dst, layout):
    """Reference with python loops: `[B][merged]` raster index of every destination, in merge's order."""
    flat = torch.arange(layout.num_tokens).view(layout.grid)
    out = [[] for _ in range(dst[0].shape[0])]
    for idx, b in zip(dst, layout.blocks):
        corners = list(itertools.product(*(range(s, s + n, k) for s, n, k in zip(b.start, b.size, b.tile))))
        for n, row in enumerate(out):
            for t, corner in enumerate(corners):
                tile = flat[tuple(slice(c, c + k) for c, k in zip(corner, b.tile))].flatten()
                row.extend(tile[s].item() for s in idx[n, t].tolist())
    return out


@pytest.mark.parametrize("layout", LAYOUTS)
def test_token_id_table_gives_raster_indices_of_destinations(layout):
    """For t[n] = n the gathered rows are the destinations' raster indices, for (N,), (N, D) and (B, N, D)."""
    dst = destinations(layout)
    expected = torch.tensor(raster_indices(dst, layout))  # (B, Nm)
    ids = torch.arange(layout.num_tokens)
    assert torch.equal(gather_positions(ids, dst, layout), expected)
    table = torch.stack([ids, -ids], dim=-1)  # (N, 2)
    assert torch.equal(gather_positions(table, dst, layout), torch.stack([expected, -expected], dim=-1))
    batched = table.expand(2, -1, -1) + torch.tensor([0, 1000]).view(
        2, 1, 1
    )  # (B, N, 2), rows differ per batch
    expected_batched = torch.stack([expected, -expected], dim=-1) + torch.tensor([0, 1000]).view(2, 1, 1)
    assert torch.equal(gather_positions(batched, dst, layout), expected_batched)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_matches_merge_with_destination_one_hot_weights(layout):
    """Gathering is merge with each destination taking only itself: same rows, same order."""
    dst = destinations(layout)
    table = torch.randn(2, layout.num_tokens, 5)
    weights = [F.one_hot(idx, b.tile_size).float() for idx, b in zip(dst, layout.blocks)]
    torch.testing.assert_close(
        gather_positions(table, dst, layout), merge(table, weights, layout), rtol=0, atol=0
    )


def test_shared_table_follows_each_batch_elements_destinations():
    """A table without batch gives (B, Nm, D), and rows differ where the elements' destinations differ."""
    layout = TileLayout((8, 8), (4, 4), 0.75)
    dst = destinations(layout)
    assert not torch.equal(dst[0][0], dst[0][1])
    table = torch.randn(layout.num_tokens, 3)
    out = gather_positions(table, dst, layout)
    assert out.shape == (2, layout.num_merged, 3)
    differ = (out[0] != out[1]).any(-1)
    assert torch.equal(differ, (dst[0][0] != dst[0][1]).flatten())


def test_bad_table_rank_raises():
    """Tables of rank 0 or 4 are refused."""
    layout = TileLayout((4, 4), (2, 2), 0.5)
    dst = destinations(layout)
    with pytest.raises(ValueError, match="table must be"):
        gather_positions(torch.zeros(2, 16, 3, 1), dst, layout)
    with pytest.raises(ValueError, match="table must be"):
        gather_positions(torch.tensor(1.0), dst, layout)
