"""A Flux pipeline with ToMA and a schedule: destinations selected every 3rd step, reused in between.

Cond and uncond run as two calls per step (`true_cfg_scale`); `toma_fx.apply` tracks the pipeline's
`cache_context("cond"/"uncond")` so each branch keeps its own destinations.

    python examples/flux_pipeline.py            # mid-size Flux-like transformer, 512x512
    python examples/flux_pipeline.py tiny aot_eager   # what the tests run
"""

import sys
import time

import torch

import toma_fx
from toma_fx.pipelines import build_pipeline, prompt_inputs

size = sys.argv[1] if len(sys.argv) > 1 else "mid"
compiler = sys.argv[2] if len(sys.argv) > 2 else "inductor"  # or aot_eager: the same graphs, no kernels
side = 512 if size != "tiny" else 128
pipe = build_pipeline("flux", size)
inputs = prompt_inputs("flux", pipe)  # includes true_cfg_scale=2.0 and negative embeddings

config = toma_fx.ToMAConfig(select_every=3, min_tokens=1024 if size != "tiny" else 16)
toma_fx.apply(pipe, config, inner=compiler)
for i in range(2):
    start = time.perf_counter()
    with torch.no_grad():
        image = pipe(**inputs, height=side, width=side, num_inference_steps=6).images[0]
    print(f"generation {i}: {image.size}, {time.perf_counter() - start:.2f} s")
