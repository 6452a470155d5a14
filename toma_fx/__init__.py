"""toma-fx: ToMA (Token Merge with Attention) for diffusion denoisers, as a torch.compile backend.

    import toma_fx
    toma_fx.apply(pipe, toma_fx.ToMAConfig(ratio=0.5))                    # a diffusers pipeline
    model = torch.compile(model, backend=toma_fx.toma_backend)            # or backend="toma"
    print(toma_fx.explain(model, *example_args))                          # what would be merged
    with toma_fx.step(i): model(x, t)                                     # for reuse across steps

Importing this package imports torch, and neither Triton nor CUDA: the pipeline functions (`apply`,
`remove`, `track_steps`) need diffusers' hooks, whose import loads diffusers and Triton (seconds), so
they load on first use.
"""

import importlib

from toma_fx.backend import toma_backend
from toma_fx.config import ToMAConfig
from toma_fx.explain import explain
from toma_fx.ops import TileLayout
from toma_fx.passes.pipeline import FallbackWarning
from toma_fx.steps import reset_steps, step

_ON_FIRST_USE = {
    "apply": "toma_fx.pipelines",
    "remove": "toma_fx.pipelines",
    "track_steps": "toma_fx.pipeline_hooks",
}


def __getattr__(name: str):
    """`toma_fx.apply` and the rest of `_ON_FIRST_USE`, imported when first looked up (PEP 562)."""
    if name not in _ON_FIRST_USE:
        raise AttributeError(f"module 'toma_fx' has no attribute {name!r}")
    value = getattr(importlib.import_module(_ON_FIRST_USE[name]), name)
    globals()[name] = value
    return value


__all__ = [
    "FallbackWarning",
    "TileLayout",
    "ToMAConfig",
    "apply",
    "explain",
    "remove",
    "reset_steps",
    "step",
    "toma_backend",
    "track_steps",
]
__version__ = "0.1.0"
