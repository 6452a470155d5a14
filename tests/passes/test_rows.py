"""Row origins: which rows of a token tensor are image rows, and on what grid, traced through the ops
that make them (no names: every input here is called `x`, `y` or `ids`)."""

import pytest
import torch
import torch.nn.functional as F

from toma_fx.passes.grid import Grid, context_grids, grid_of
from toma_fx.passes.rows import row_origins
from toma_fx.passes.rows.ids import raster_run

from .graphs import traced


def rows_of_output(fn, *args, contexts=()):
    """`[(rows, Grid or reason)]` of the token axis (dim 1) of `fn(*args)`."""
    gm, example_inputs = traced(fn, *args)
    env = row_origins(gm, example_inputs)
    out = gm.graph.output_node().args[0][0]
    contexts = context_grids(None, None, example_inputs) if contexts == () else contexts
    return [(s.size, grid_of(s, env, contexts, ())) for s in env.of(out)[1]]


W = torch.randn(16, 4, 2, 2)


@pytest.mark.parametrize(
    "case, fn, latent, grid",
    [
        (
            "conv patch embedding",
            lambda x: F.conv2d(x, W, stride=2).flatten(2).transpose(1, 2),
            (2, 4, 12, 8),
            (6, 4),
        ),
        (
            "reshape / permute patchify",
            lambda x: (
                x.reshape(2, 4, 6, 2, 4, 2).permute(0, 2, 4, 1, 3, 5).reshape(2, 24, 16) @ torch.ones(16, 8)
            ),
            (2, 4, 12, 8),
            (6, 4),
        ),
        (
            "a video's Conv3d",
            lambda x: F.conv3d(x, torch.randn(16, 4, 1, 2, 2), stride=(1, 2, 2)).flatten(2).transpose(1, 2),
            (2, 4, 3, 12, 8),
            (3, 6, 4),
        ),
        (
            "frames folded into the batch (per-frame rows)",
            lambda x: F.conv2d(x.flatten(0, 1), W, stride=2).flatten(2).transpose(1, 2),
            (2, 3, 4, 12, 8),
            (6, 4),
        ),
    ],
)
def test_latent_grids(case, fn, latent, grid):
    ((size, found),) = rows_of_output(fn, torch.randn(*latent))
    assert isinstance(found, Grid) and found.shape == grid and found.source.startswith("graph"), found


def embed(x):
    return F.conv2d(x, W, stride=2).flatten(2).transpose(1, 2)  # (2, 24, 16)


def test_text_concatenated_before_the_image_is_not_image():
    rows = rows_of_output(
        lambda x, y: torch.cat([y, embed(x)], 1), torch.randn(2, 4, 12, 8), torch.randn(2, 5, 16)
    )
    (_, text), (n, image) = rows
    assert isinstance(text, str) and "rows of input" in text
    assert n == 24 and isinstance(image, Grid)


def test_a_padded_buffer_written_sample_by_sample():
    """Lumina-2's joint sequence: zeros, then per sample the caption rows and the image rows."""

    def joint(x, y):
        img = embed(x)
        buf = img.new_zeros(2, 32, 16)
        for i in range(2):
            buf[i, :5] = y[i]
            buf[i, 5:29] = img[i]
        return buf

    sizes = [
        (n, isinstance(g, Grid))
        for n, g in rows_of_output(joint, torch.randn(2, 4, 12, 8), torch.randn(2, 5, 16))
    ]
    assert sizes == [(5, False), (24, True), (3, False)]


def test_rows_placed_by_position_tables_the_model_builds():
    """Qwen-Image / LTX style: packed tokens of unknown origin meet a RoPE table laid out with
    `arange` and broadcasts: the table says where the rows are."""

    def rope(x):
        h, w = torch.arange(6.0), torch.arange(4.0)
        pos = torch.stack(torch.meshgrid(h, w, indexing="ij"), -1).reshape(24, 2)
        table = torch.cos(pos @ torch.ones(2, 16))
        return x * table

    ((n, found),) = rows_of_output(rope, torch.randn(2, 24, 16))
    assert n == 24 and found == Grid((6, 4), "positions: x")
    gm, example_inputs = traced(rope, torch.randn(2, 24, 16))
    env = row_origins(gm, example_inputs)
    (seg,) = env.of(gm.graph.output_node().args[0][0])[1]
    assert [f.size for f in seg.positions] == [6, 4] and seg.factors[0].root.name == "l_x_"


@pytest.mark.parametrize(
    "rows, run",
    [
        (
            torch.stack(
                torch.meshgrid(torch.zeros(1), torch.arange(6.0), torch.arange(4.0), indexing="ij"), -1
            ).reshape(-1, 3),
            (0, (6, 4)),
        ),
        # a caption prefix at the origin (Krea-2), then the image: the run starts after it
        (
            torch.cat(
                [
                    torch.zeros(5, 3),
                    torch.stack(
                        torch.meshgrid(torch.zeros(1), torch.arange(6.0), torch.arange(4.0), indexing="ij"),
                        -1,
                    ).reshape(-1, 3),
                ]
            ),
            (5, (6, 4)),
        ),
        (torch.arange(10.0)[:, None].expand(10, 3), None),  # one varying axis: a sequence, not a grid
        (torch.rand(24, 3), None),
    ],
)
def test_position_id_runs(rows, run):
    assert raster_run(rows) == run


def test_unplaceable_rows_are_not_image_rows():
    ((_, found),) = rows_of_output(lambda x: torch.flip(x, [1]) * 2, torch.randn(2, 24, 16), contexts=[])
    assert isinstance(found, str)
