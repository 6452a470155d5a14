"""The operators trace whole into one graph and Inductor's code matches eager."""

import torch

from toma_fx.ops import TileLayout, gather_positions, merge, merge_weights, select_destinations, unmerge


def merged_block(x, table, proj, layout):
    """select -> weights -> merge -> a linear op on merged tokens -> unmerge, plus the gathered table."""
    dst = select_destinations(x, layout)
    w = merge_weights(x, dst, layout)
    return unmerge(merge(x, w, layout) @ proj, w, layout), gather_positions(table, dst, layout)


def test_inductor_matches_eager_without_graph_breaks():
    torch._dynamo.reset()
    layout = TileLayout((10, 13), (4, 4), 0.5)  # four blocks: the edge tiles are traced too
    x, table, proj = torch.randn(2, 130, 16), torch.randn(130, 4), torch.randn(16, 16)
    compiled = torch.compile(merged_block, fullgraph=True)
    out, pos = compiled(x, table, proj, layout)
    ref_out, ref_pos = merged_block(x, table, proj, layout)
    assert out.shape == (2, 130, 16) and pos.shape == (2, layout.num_merged, 4)
    torch.testing.assert_close(out, ref_out, rtol=1e-4, atol=1e-4)
    assert torch.equal(pos, ref_pos)
