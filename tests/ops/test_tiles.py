"""Tiles of a token grid (1-D, 2-D, 3-D): exact split/join, block layout, destinations per tile, checks."""

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from toma_fx.ops import TileLayout, destinations_per_tile

LAYOUTS = [
    pytest.param(TileLayout((64, 64), (4, 4), 0.5), id="square-divisible"),
    pytest.param(TileLayout((64, 48), (8, 8), 0.5), id="non-square"),
    pytest.param(TileLayout((52, 76), (8, 8), 0.5), id="four-blocks"),  # 52 % 8 = 4, 76 % 8 = 4
    pytest.param(TileLayout((13, 7), (4, 3), 0.75), id="four-blocks-small"),  # edge strips 1 token wide
    pytest.param(TileLayout((6, 5), (6, 5), 0.5), id="tile-is-grid"),  # one tile
    pytest.param(TileLayout((5, 3), (1, 1), 0.5), id="tile-1x1"),  # S = 1, K = 1
    pytest.param(TileLayout((64,), (16,), 0.5), id="1d-divisible"),
    pytest.param(TileLayout((70,), (16,), 0.5), id="1d-remainder"),  # 70 = 4 * 16 + 6
    pytest.param(TileLayout((4, 8, 8), (2, 4, 4), 0.5), id="3d-divisible"),
    pytest.param(TileLayout((21, 6, 10), (2, 4, 4), 0.5), id="3d-eight-blocks"),  # odd frames, edges
    pytest.param(TileLayout((1, 8, 6), (1, 4, 4), 0.5), id="3d-one-frame"),
]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("batch", [1, 3])
def test_split_join_round_trip_is_exact(layout, batch):
    """`join(split(x))` gives back x bit for bit, and every tile has the block's tile size."""
    torch.manual_seed(0)
    x = torch.randn(batch, layout.num_tokens, 5)
    tiles = layout.split(x)
    assert [t.shape for t in tiles] == [(batch, b.num_tiles, b.tile_size, 5) for b in layout.blocks]
    assert torch.equal(layout.join(tiles), x)


@pytest.mark.parametrize("layout", LAYOUTS[2:4])
def test_split_join_non_contiguous_input(layout):
    """A transposed (non-contiguous) input round-trips exactly too."""
    torch.manual_seed(0)
    x = torch.randn(2, 6, layout.num_tokens).transpose(1, 2)
    assert not x.is_contiguous()
    assert torch.equal(layout.join(layout.split(x)), x)


@pytest.mark.parametrize(
    "grid, tile, num_blocks",
    [
        ((8, 6), (4, 3), 1),  # divisible: body only
        ((8, 7), (4, 3), 2),  # body + right strip
        ((9, 6), (4, 3), 2),  # body + bottom strip
        ((9, 7), (4, 3), 4),  # body, right, bottom, corner
        ((3, 8, 8), (2, 4, 4), 2),  # odd frame count: a last one-frame slab
        ((3, 9, 7), (2, 4, 3), 8),  # a remainder along every axis
        ((10,), (4,), 2),  # 1-D: body + tail
    ],
)
def test_tiles_hold_grid_boxes_in_raster_order(grid, tile, num_blocks):
    """Tile t of a block holds its box of the grid; tiles and the tokens inside them in raster order."""
    layout = TileLayout(grid, tile, 0.5)
    ids = torch.arange(math.prod(grid)).view(1, -1, 1)  # x[b, n, 0] = n
    tiles = layout.split(ids)
    assert len(tiles) == num_blocks
    flat = torch.arange(math.prod(grid)).view(grid)
    for t, b in zip(tiles, layout.blocks):
        corners = itertools.product(*(range(s, s + n, k) for s, n, k in zip(b.start, b.size, b.tile)))
        expected = [
            flat[tuple(slice(c, c + k) for c, k in zip(corner, b.tile))].flatten().tolist()
            for corner in corners
        ]
        assert t[0, :, :, 0].tolist() == expected


@pytest.mark.parametrize("layout", LAYOUTS)
def test_blocks_partition_the_grid(layout):
    """Blocks cover every grid cell exactly once and are cut into whole tiles."""
    count = torch.zeros(layout.grid, dtype=torch.long)
    for b in layout.blocks:
        assert all(n % k == 0 for n, k in zip(b.size, b.tile))
        count[tuple(slice(s, s + n) for s, n in zip(b.start, b.size))] += 1
    assert bool((count == 1).all())
    assert sum(math.prod(b.size) for b in layout.blocks) == layout.num_tokens


@pytest.mark.parametrize("layout", LAYOUTS)
def test_split_join_merged_round_trip(layout):
    """`num_merged` is sum(T_i * K_i) and `join_merged(split_merged(y))` is exact."""
    assert layout.num_merged == sum(b.num_tiles * b.keep for b in layout.blocks)
    torch.manual_seed(0)
    y = torch.randn(2, layout.num_merged, 3)
    parts = layout.split_merged(y)
    assert [p.shape for p in parts] == [(2, b.num_tiles, b.keep, 3) for b in layout.blocks]
    assert torch.equal(layout.join_merged(parts), y)


def test_split_merged_rejects_wrong_length():
    """A merged sequence of the wrong length is refused."""
    layout = TileLayout((8, 8), (4, 4), 0.5)
    with pytest.raises(ValueError, match="merged tokens"):
        layout.split_merged(torch.zeros(1, layout.num_merged + 1, 2))


@pytest.mark.parametrize(
    "size, ratio, keep",
    [
        (16, 0.5, 8),
        (16, 0.75, 4),
        (1, 0.0, 1),  # S = 1 keeps its only token whatever the ratio
        (1, 0.5, 1),
        (1, 0.99, 1),
        (100, 0.29, 71),  # 100 * 0.29 = 28.999... in floating point
        (16, 0.0, 16),  # ratio 0 keeps every token
        (4, 0.99, 1),  # floor(3.96) = 3
        (7, 0.5, 4),  # floor(3.5) = 3
    ],
)
def test_destinations_per_tile(size, ratio, keep):
    """K = S - floor(S * ratio), at least 1."""
    assert destinations_per_tile(size, ratio) == keep


@pytest.mark.parametrize("ratio", [-0.1, 1.0, 1.2, math.nan])
def test_bad_ratio_raises(ratio):
    """A ratio outside [0, 1) is refused by the layout and by destinations_per_tile."""
    with pytest.raises(ValueError, match=r"ratio must be in \[0, 1\)"):
        TileLayout((8, 8), (4, 4), ratio)
    with pytest.raises(ValueError, match=r"ratio must be in \[0, 1\)"):
        destinations_per_tile(16, ratio)


@pytest.mark.parametrize(
    "grid, tile, match",
    [
        ((8, 8), (9, 4), "tile must fit in the grid"),  # tile taller than the grid
        ((8, 8), (4, 9), "tile must fit in the grid"),  # tile wider than the grid
        ((0, 8), (1, 1), "grid must be a tuple of positive ints"),
        ((8, -2), (1, 1), "grid must be a tuple of positive ints"),
        ((8, 8), (0, 4), "tile must be a tuple of positive ints"),
        ((8, 8), (4, -1), "tile must be a tuple of positive ints"),
        ((), (), "grid must be a tuple of positive ints"),
        ((8,), (4, 4), "tile must fit in the grid"),  # one entry per axis
        ((2, 8, 8), (4, 4), "tile must fit in the grid"),
        ((2, 8, 8), (3, 4, 4), "tile must fit in the grid"),  # more frames than the grid
    ],
)
def test_bad_grid_or_tile_raises(grid, tile, match):
    """Grids and tiles are tuples of positive ints, one tile entry per grid axis, inside the grid."""
    with pytest.raises(ValueError, match=match):
        TileLayout(grid, tile, 0.5)


def test_bad_tile_size_raises():
    """A tile of no tokens is refused."""
    with pytest.raises(ValueError, match="tile_size must be >= 1"):
        destinations_per_tile(0, 0.5)


def test_split_wrong_token_count_raises():
    """Tokens that do not fill the grid are refused with a message naming the grid."""
    layout = TileLayout((8, 8), (4, 4), 0.5)
    with pytest.raises(ValueError, match="grid 8x8 holds 64 tokens, got 63"):
        layout.split(torch.zeros(1, 63, 2))


@settings(max_examples=60, deadline=None, database=None)
@given(data=st.data())
def test_round_trip_property(data):
    """Any 1-D, 2-D or 3-D grid and tile: split/join is exact and the merged count lies in [1, N]."""
    rank = data.draw(st.integers(1, 3), label="rank")
    grid = tuple(data.draw(st.integers(1, 12), label=f"grid[{i}]") for i in range(rank))
    tile = tuple(data.draw(st.integers(1, g), label=f"tile[{i}]") for i, g in enumerate(grid))
    B = data.draw(st.integers(1, 2), label="B")
    C = data.draw(st.integers(1, 4), label="C")
    ratio = data.draw(st.floats(0.0, 0.99), label="ratio")
    layout = TileLayout(grid, tile, ratio)
    N = math.prod(grid)
    x = torch.arange(B * N * C, dtype=torch.float32).view(B, N, C)
    assert torch.equal(layout.join(layout.split(x)), x)
    assert 1 <= layout.num_merged <= N


def test_numpy_ratio_is_a_number():
    import numpy as np

    assert TileLayout((8, 8), (4, 4), np.float32(0.5)).num_merged == 32


def test_fractional_grid_is_refused_not_truncated():
    with pytest.raises(ValueError, match="grid must be a tuple of positive ints"):
        TileLayout((8.7, 8), (4, 4), 0.5)
