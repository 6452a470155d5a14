"""One line for an SDXL pipeline: `toma_fx.apply`, two generations, then `toma_fx.remove`.

The pipeline is assembled from configs with random weights (no download) and prompt embeddings stand in
for the text encoders; with weights on disk, `toma_fx.pipelines.load_pipeline(path)` and a `prompt=`
do the same. Batch 2, classifier-free guidance, a non-square image.

    python examples/sdxl_pipeline.py            # mid-size UNet, 512x384
    python examples/sdxl_pipeline.py tiny aot_eager   # what the tests run
"""

import sys
import time

import torch

import toma_fx
from toma_fx.pipelines import build_pipeline, prompt_inputs

size = sys.argv[1] if len(sys.argv) > 1 else "mid"
compiler = sys.argv[2] if len(sys.argv) > 2 else "inductor"  # or aot_eager: the same graphs, no kernels
height, width = (512, 384) if size != "tiny" else (128, 96)
pipe = build_pipeline("sdxl", size)
inputs = prompt_inputs("sdxl", pipe, batch=2)

config = toma_fx.ToMAConfig(ratio=0.5, min_tokens=1024 if size != "tiny" else 16, select_every=2)
toma_fx.apply(pipe, config, inner=compiler)
for i in range(2):  # the first generation compiles
    start = time.perf_counter()
    with torch.no_grad():
        images = pipe(**inputs, height=height, width=width, num_inference_steps=4, guidance_scale=5.0).images
    print(f"generation {i}: {len(images)} images of {images[0].size}, {time.perf_counter() - start:.2f} s")
toma_fx.remove(pipe)
