"""Merge the tokens of a photograph with ToMA's operators, run an op on the merged tokens, unmerge.

python examples/merge_tokens.py
"""

import torch

from toma_fx.bench.reconstruction import photo_tokens, psnr
from toma_fx.ops import TileLayout, merge, merge_weights, select_destinations, unmerge

tokens, grid = photo_tokens("astronaut", patch=8)  # (1, 4096, 192) on a 64x64 grid
x = tokens - tokens.mean(dim=1, keepdim=True)

layout = TileLayout(grid, tile=(4, 4), ratio=0.5)  # 4x4 tiles, half the tokens removed
dst = select_destinations(x, layout)  # [(1, 256, 8)]: 8 destinations per tile
weights = merge_weights(x, dst, layout)  # [(1, 256, 8, 16)]: soft assignment, fp32

merged = merge(x, weights, layout)  # (1, 2048, 192)
op = torch.nn.Linear(192, 192)
with torch.no_grad():
    torch.nn.init.eye_(op.weight), torch.nn.init.zeros_(op.bias)
    y = unmerge(op(merged), weights, layout)  # (1, 4096, 192): the op ran on half the tokens

print(f"{layout.num_tokens} tokens -> {layout.num_merged} merged; reconstruction PSNR {psnr(y, x):.2f} dB")
