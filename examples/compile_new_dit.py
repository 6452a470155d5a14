"""Accelerate a model no patch has ever seen: a DiT written from plain torch, under `toma_backend`.

`PlainDiT` uses a fused qkv projection split by reshape/permute/unbind, `F.scaled_dot_product_attention`
and a tanh-GELU MLP: there is no diffusers class for the pass to recognise, only the graph.

    python examples/compile_new_dit.py
"""

import torch

import toma_fx
from toma_fx.architectures import PlainDiT

model = PlainDiT(dim=64, depth=2, heads=4).eval()
sample, timestep = torch.randn(2, 4, 64, 64), torch.full((2,), 500.0)  # 32x32 = 1024 tokens

report = toma_fx.explain(model, sample, timestep)
print(report)

compiled = torch.compile(model, backend=toma_fx.toma_backend, fullgraph=True)
with torch.no_grad():
    merged, full = compiled(sample, timestep), model(sample, timestep)
print(
    f"\noutput {tuple(merged.shape)}, relative difference to the unmerged model: "
    f"{((merged - full).norm() / full.norm()).item():.3f}"
)
