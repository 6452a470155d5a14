"""The coverage matrix: every image and video denoiser of the zoo (all transformer denoisers of the
installed diffusers), tiny, at a non-square grid, batch 2. For each, from one Dynamo trace:

    regions merged per kind, and the grid and its source, as `EXPECTED` says
    ratio 0 hands Inductor the traced graph itself (bitwise plain torch.compile)
    every merged region holds the image's rows only: its row count and grid are the image's
    with every token kept (K = S), the rewritten graph computes what the traced one does
    at ratio 0.5 the rewritten graph runs, with the traced output shapes, finite

Models Dynamo cannot trace as one graph are traced as `torch.compile` runs them, and the graphs after a
break get the latent grid of the call, as `toma_fx.apply` gives them.
"""

import math

import pytest
import torch

from toma_fx import zoo
from toma_fx.coverage import TINY_CONFIG
from toma_fx.passes import pipeline

from ..compiler.helpers import identity_merges
from .expected import EXPECTED

CONFIG = TINY_CONFIG


def grid_of(name: str) -> tuple[int, ...]:
    return zoo.fitted_grid(name, (3, 16, 12) if zoo.DENOISERS[name].video else (16, 12))


def trace(name: str):
    """`(graphs, fullgraph)`: every Dynamo graph of one call with its example inputs."""
    model = zoo.build(name)
    inputs = zoo.inputs(name, model, grid=grid_of(name), batch=2)
    graphs = []

    def record(gm, example_inputs):
        graphs.append((gm, example_inputs))
        return gm.forward

    for fullgraph in (True, False):
        graphs.clear()
        torch._dynamo.reset()
        try:
            with torch.no_grad():
                torch.compile(model, backend=record, fullgraph=fullgraph, dynamic=False)(**inputs)
            return graphs, fullgraph
        except (torch._dynamo.exc.Unsupported, torch._dynamo.exc.UserError):
            if not fullgraph:
                raise
    raise AssertionError("unreachable")


def tensors(out) -> list[torch.Tensor]:
    return [t for t in (out if isinstance(out, (tuple, list)) else [out]) if isinstance(t, torch.Tensor)]


@pytest.mark.parametrize("name", list(EXPECTED))
def test_coverage(name):
    expected = EXPECTED[name]
    grid = grid_of(name)
    graphs, fullgraph = trace(name)
    assert fullgraph == expected.fullgraph
    call_grid = None if fullgraph else grid  # what toma_fx.apply tells graphs after a break
    counts, grids = {}, set()
    for gm, example_inputs in graphs:
        assert pipeline.run(gm, example_inputs, CONFIG.replace(ratio=0)).gm is gm
        result = pipeline.run(gm, example_inputs, CONFIG, call_grid=call_grid)
        assert result.error is None
        with torch.no_grad():
            traced = tensors(gm(*example_inputs))
        if not result.rewrites:
            continue
        for rw in result.rewrites:
            c = rw.site.candidate
            counts[c.kind] = counts.get(c.kind, 0) + 1
            grids.add(str(c.grid))
            images = {grid, grid[1:]} if len(grid) == 3 else {grid}
            assert c.grid.shape in images and c.n == math.prod(c.grid.shape), (
                f"{c.path}: not the image's rows"
            )
        with torch.no_grad():
            merged = tensors(result.gm(*example_inputs))
        assert [t.shape for t in merged] == [t.shape for t in traced]
        assert all(torch.isfinite(t).all() for t in merged if t.is_floating_point())
        with identity_merges(), torch.no_grad():
            identity = pipeline.run(gm, example_inputs, CONFIG, call_grid=call_grid)
            assert identity.error is None
            kept = tensors(identity.gm(*example_inputs))
        for a, b in zip(kept, traced):
            if a.is_floating_point():
                torch.testing.assert_close(a, b, atol=1e-3 * float(b.abs().max()) + 1e-5, rtol=1e-3)
    assert counts == expected.counts
    assert grids == expected.grids


# Classes of the installed diffusers that the zoo does not build, and why.
LEFT_OUT = {
    "Transformer2DModel": "a legacy container: its patched path is PixArt / DiT, its other path a UNet block",
    "DualTransformer2DModel": "a Versatile Diffusion sub-block",
    "PriorTransformer": "a CLIP-embedding prior, no image tokens",
    "T5FilmDecoder": "a spectrogram decoder",
    "TransformerTemporalModel": "a UNet's temporal block, not a denoiser",
    "WanAnimate2Transformer3DModel": "its call needs a KV cache filled by a reference pass",
    "SanaWMTransformer3DModel": "a camera-controlled world model: its call needs camera trajectories",
    "SanaWMLTX2RefinerTransformer3DModel": "a KV-cache refiner of the world model",
    "Cosmos3OmniTransformer": "an omni model over packed token lists, no video grid",
    "JoyImageEditTransformer3DModel": "an editing model over packed token lists",
    "JoyImageEditPlusTransformer3DModel": "an editing model over packed token lists",
}
NOT_IMAGE_OR_VIDEO = ("Audio", "Music", "Proteina", "StableAudio", "AceStep", "RVQ", "LongCatAudio")


def test_every_transformer_denoiser_of_diffusers_has_a_row():
    import diffusers.models.transformers as transformers

    classes = {
        name
        for name in dir(transformers)
        if isinstance(getattr(transformers, name), type)
        and issubclass(getattr(transformers, name), torch.nn.Module)
    }
    classes = {c for c in classes if not any(word in c for word in NOT_IMAGE_OR_VIDEO)}
    covered = {e.cls for e in zoo.DENOISERS.values()}
    assert classes - covered - set(LEFT_OUT) == set()
    assert set(LEFT_OUT) <= classes
