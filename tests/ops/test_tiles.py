"""Tiles of a token grid: exact split/join, block layout, destinations per tile, argument checks."""

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
    pytest.param(TileLayout.stripes(64, 16, 0.5), id="stripes-divisible"),
    pytest.param(TileLayout.stripes(70, 16, 0.5), id="stripes-remainder"),  # 70 = 4 * 16 + 6
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
    ],
)
def test_tiles_hold_grid_rectangles_in_row_major_order(grid, tile, num_blocks):
    """Tile t of a block holds its th x tw rectangle of the grid, tiles and tokens row-major."""
    H, W = grid
    layout = TileLayout(grid, tile, 0.5)
    ids = torch.arange(H * W).view(1, H * W, 1)  # x[b, n, 0] = n
    tiles = layout.split(ids)
    assert len(tiles) == num_blocks
    for t, b in zip(tiles, layout.blocks):
        expected = [
            [(b.top + r0 + i) * W + b.left + c0 + j for i in range(b.tile_h) for j in range(b.tile_w)]
            for r0 in range(0, b.height, b.tile_h)
            for c0 in range(0, b.width, b.tile_w)
        ]
        assert t[0, :, :, 0].tolist() == expected


@pytest.mark.parametrize("layout", LAYOUTS)
def test_blocks_partition_the_grid(layout):
    """Blocks cover every grid cell exactly once and are cut into whole tiles."""
    H, W = layout.grid
    count = [[0] * W for _ in range(H)]
    for b in layout.blocks:
        assert b.height % b.tile_h == 0 and b.width % b.tile_w == 0
        for r in range(b.top, b.top + b.height):
            for c in range(b.left, b.left + b.width):
                count[r][c] += 1
    assert all(v == 1 for row in count for v in row)
    assert sum(b.height * b.width for b in layout.blocks) == H * W


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
        ((0, 8), (1, 1), "grid must be a pair of positive ints"),
        ((8, -2), (1, 1), "grid must be a pair of positive ints"),
        ((8, 8), (0, 4), "tile must be a pair of positive ints"),
        ((8, 8), (4, -1), "tile must be a pair of positive ints"),
        ((8,), (4, 4), "grid must be a pair"),  # not a pair
    ],
)
def test_bad_grid_or_tile_raises(grid, tile, match):
    """Grids and tiles must be pairs of positive ints, with the tile inside the grid."""
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
    """Any grid and tile: split/join is exact and the merged count lies in [1, N]."""
    H = data.draw(st.integers(1, 20), label="H")
    W = data.draw(st.integers(1, 20), label="W")
    th = data.draw(st.integers(1, H), label="th")
    tw = data.draw(st.integers(1, W), label="tw")
    B = data.draw(st.integers(1, 2), label="B")
    C = data.draw(st.integers(1, 4), label="C")
    ratio = data.draw(st.floats(0.0, 0.99), label="ratio")
    layout = TileLayout((H, W), (th, tw), ratio)
    x = torch.arange(B * H * W * C, dtype=torch.float32).view(B, H * W, C)
    assert torch.equal(layout.join(layout.split(x)), x)
    assert 1 <= layout.num_merged <= H * W


def test_numpy_ratio_is_a_number():
    import numpy as np

    assert TileLayout((8, 8), (4, 4), np.float32(0.5)).num_merged == 32


def test_fractional_grid_is_refused_not_truncated():
    with pytest.raises(ValueError, match="grid must be a pair of positive ints"):
        TileLayout((8.7, 8), (4, 4), 0.5)


def test_stripe_longer_than_the_sequence_is_one_stripe():
    layout = TileLayout.stripes(10, 16, 0.5)
    assert layout.tile == (1, 10) and layout.num_merged == 5
