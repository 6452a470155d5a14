"""What the compiler pass would do to a model, without compiling it for speed: every region merged or
skipped (and why), token grids, destinations, and the FLOP-ideal speedup.

    python examples/explain_model.py            # mid-size SDXL-like UNet at 1024x1024 (128x128 latent)
    python examples/explain_model.py tiny
"""

import sys

import toma_fx
from toma_fx.architectures import build, example_inputs

size = sys.argv[1] if len(sys.argv) > 1 else "mid"
model = build("sdxl", size)
latent = (128, 128) if size != "tiny" else (16, 16)
config = toma_fx.ToMAConfig(min_tokens=1024 if size != "tiny" else 16)
report = toma_fx.explain(model, **example_inputs("sdxl", model, batch=2, latent=latent), config=config)
print(report)
print(f"\nmerged per kind: {report.counts()}; FLOP-ideal speedup {report.speedup:.2f}x")
