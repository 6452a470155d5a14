"""The pieces `toma_fx.apply` puts together, by hand: regional compilation of a Flux transformer
through `toma_backend`, told the step by `toma_fx.step` in a sampling loop of your own.

`compile_repeated_blocks` compiles one graph per block class, which serves every block of that class;
what each block keeps between steps is found by its weights, so nothing recompiles. A block graph cannot
see the image, so the token grid is given in the config.

    python examples/regional_compile.py         # mid-size, 64x64 latent (32x32 tokens)
    python examples/regional_compile.py tiny aot_eager
"""

import sys

import torch

import toma_fx
from toma_fx.architectures import build, example_inputs

size = sys.argv[1] if len(sys.argv) > 1 else "mid"
compiler = sys.argv[2] if len(sys.argv) > 2 else "inductor"  # or aot_eager: the same graphs, no kernels
latent = (64, 64) if size != "tiny" else (16, 16)
model = build("flux", size)
inputs = example_inputs("flux", model, latent=latent)
tokens = (latent[0] // 2, latent[1] // 2)  # Flux packs 2x2 latent patches into one token

backend = toma_fx.toma_backend.configure(grid=tokens, min_tokens=16, select_every=3, inner=compiler)
model.compile_repeated_blocks(backend=backend, fullgraph=True, dynamic=False)
x = inputs["hidden_states"]
with torch.no_grad():
    for i, t in enumerate(torch.linspace(1.0, 0.1, 6)):
        with toma_fx.step(i):
            v = model(**{**inputs, "hidden_states": x, "timestep": t.expand(x.shape[0])}).sample
        x = x - 0.15 * v  # an Euler step of a flow-matching sampler
        print(f"step {i}: |v| = {v.norm():.2f}")
