"""The functions rewritten graphs call: segments of text around the image, any token and batch axis,
2-D and 3-D grids, tables."""

import pytest
import torch

from toma_fx.ops import gather_positions, merge_sdpa, nodes, unmerge_sdpa

LAYOUTS = [
    ((8, 8), (4, 4), 0.5),
    ((6, 10), (4, 4), 0.5),  # four blocks
    ((40,), (16,), 0.75),  # 1-D
    ((3, 6, 5), (2, 4, 4), 0.5),  # a video grid no tile divides
]


def _tokens(B, n, C, seed=0):
    return torch.randn(B, n, C, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("before, after", [(0, 0), (5, 0), (0, 3), (2, 4)])
def test_merge_keeps_text_and_unmerge_restores_the_length(layout, before, after):
    L = nodes.tile_layout(layout)
    x = _tokens(2, before + L.num_tokens + after, 8)
    seg = (1, before, after, 0)
    dst = nodes.select(x, layout, seg)
    assert dst.shape == (2, L.num_merged) and dst.dtype == torch.int64
    w = nodes.weights(x, dst, layout, seg, 1000.0)
    y = nodes.merge(x, w, layout, seg)
    assert y.shape == (2, before + L.num_merged + after, 8)
    torch.testing.assert_close(y[:, :before], x[:, :before])
    torch.testing.assert_close(y[:, y.shape[1] - after :], x[:, x.shape[1] - after :])
    back = nodes.unmerge(y, w, layout, (1, before, after, 0))
    assert back.shape == x.shape
    torch.testing.assert_close(back[:, :before], x[:, :before])
    torch.testing.assert_close(back[:, back.shape[1] - after :], x[:, x.shape[1] - after :])


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("before, after", [(0, 0), (5, 0), (2, 4)])
def test_the_sdpa_form_merges_the_image_rows_only(layout, before, after):
    """`merge_sdpa` / `unmerge_sdpa` nodes: the SDPA operators on the image rows, text rows untouched;
    the unmerge takes the site's input as its metric, its rows placed by their own segment."""
    L = nodes.tile_layout(layout)
    x = _tokens(2, before + L.num_tokens + after, 8)
    seg = (1, before, after, 0)
    dst = nodes.select(x, layout, seg)
    image, idx = x[:, before : before + L.num_tokens], [d[..., 0] for d in L.split_merged(dst[..., None])]
    y = nodes.merge_sdpa(x, dst, layout, seg, 1000.0)
    assert y.shape == (2, before + L.num_merged + after, 8)
    torch.testing.assert_close(y[:, before : before + L.num_merged], merge_sdpa(image, image, idx, L))
    torch.testing.assert_close(y[:, :before], x[:, :before])
    torch.testing.assert_close(y[:, y.shape[1] - after :], x[:, x.shape[1] - after :])
    o = torch.randn(3 + L.num_merged, 2, 4, 6)  # (tokens, B, heads, head_dim) after 3 other rows
    back = nodes.unmerge_sdpa(o, x, dst, layout, (0, 3, 0, 1), seg, 1000.0)
    assert back.shape == (3 + L.num_tokens, 2, 4, 6)
    expected = unmerge_sdpa(o[3:].transpose(0, 1).flatten(2), image, idx, L).unflatten(2, (4, 6))
    torch.testing.assert_close(back[3:].transpose(0, 1), expected)
    torch.testing.assert_close(back[:3], o[:3])


def test_unmerge_along_any_axis_matches_the_token_major_form():
    layout = LAYOUTS[0]
    L = nodes.tile_layout(layout)
    x = _tokens(2, 3 + L.num_tokens, 8)
    w = nodes.weights(x, nodes.select(x, layout, (1, 3, 0, 0)), layout, (1, 3, 0, 0), 1000.0)
    y = torch.randn(2, 3 + L.num_merged, 4, 6)  # (B, tokens, heads, head_dim)
    heads_first = nodes.unmerge(y.transpose(1, 2), w, layout, (2, 3, 0, 0))  # (B, heads, tokens, head_dim)
    token_major = nodes.unmerge(y.flatten(2), w, layout, (1, 3, 0, 0)).unflatten(2, (4, 6))
    torch.testing.assert_close(heads_first.transpose(1, 2), token_major)
    batch_last = nodes.unmerge(y.permute(1, 2, 3, 0), w, layout, (0, 3, 0, 3))  # (tokens, heads, dim, B)
    torch.testing.assert_close(batch_last.permute(3, 0, 1, 2), token_major)


def test_a_sequence_first_source_merges_as_a_batch_first_one():
    """`(L, B, C)` sources (ERNIE-Image) merge with tokens on axis 0 and samples on axis 1."""
    layout = LAYOUTS[1]
    L = nodes.tile_layout(layout)
    x = _tokens(2, 3 + L.num_tokens, 8)
    rows = (1, 3, 0, 0)
    dst = nodes.select(x, layout, rows)
    w = nodes.weights(x, dst, layout, rows, 1000.0)
    seq_first = (0, 3, 0, 1)
    assert torch.equal(nodes.select(x.transpose(0, 1), layout, seq_first), dst)
    merged = nodes.merge(x.transpose(0, 1), w, layout, seq_first)
    torch.testing.assert_close(merged.transpose(0, 1), nodes.merge(x, w, layout, rows))


def test_gather_takes_destination_rows_and_keeps_text_rows():
    layout = LAYOUTS[1]
    L = nodes.tile_layout(layout)
    text = 5
    table = torch.randn(text + L.num_tokens, 16)  # RoPE-style (tokens, dim), no batch
    x = _tokens(2, text + L.num_tokens, 8)
    dst = nodes.select(x, layout, (1, text, 0, 0))
    # as Flux uses it: table[None, :, None, :] against q of shape (B, tokens, heads, head_dim)
    got = nodes.gather(table[None, :, None, :], dst, layout, (1, text, 0, 0), 4)
    assert got.shape == (2, text + L.num_merged, 1, 16)
    # the image rows are the table's rows at the destinations, as `gather_positions` gives them
    rows = gather_positions(table[text:], [d[..., 0] for d in L.split_merged(dst[..., None])], L)
    for b in range(2):
        torch.testing.assert_close(got[b, :text, 0], table[:text])
        torch.testing.assert_close(got[b, text:, 0], rows[b])


@pytest.mark.parametrize("layout", [LAYOUTS[1], LAYOUTS[3]])
def test_gathered_positions_are_distinct_tokens(layout):
    L = nodes.tile_layout(layout)
    x = _tokens(3, L.num_tokens, 8)
    dst = nodes.select(x, layout, (1, 0, 0, 0))
    ids = nodes.gather(torch.arange(L.num_tokens), dst, layout, (1, 0, 0, 0), 2)  # (B, Nm) raster ids
    assert ids.shape == (3, L.num_merged)
    for b in range(3):
        assert ids[b].unique().numel() == L.num_merged
