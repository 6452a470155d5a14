"""diffusers' step caches stacked with `toma_fx.apply`, in either order, on the tiny Flux pipeline.

Block caches (FirstBlockCache, MagCache) hook whole blocks; PAB, FasterCache and TaylorSeer hook the
attention modules inside them (`toma_fx.beneath_hooks`). Plain regional `torch.compile(fullgraph=True)`
of a hooked block fails on the hooks' `torch.compiler.disable`; `compile_denoiser` compiles beneath them.
"""

import pytest
import torch

from toma_fx import ToMAConfig, caches
from toma_fx.beneath_hooks import CompiledForward
from toma_fx.pipelines import apply, build_pipeline, compile_denoiser, prompt_inputs, remove

SMALL = ToMAConfig(ratio=0.5, min_tokens=16, tile=(4, 4))
STEPS = 3


def generate(pipe, inputs) -> torch.Tensor:
    with torch.no_grad():
        out = pipe(
            **inputs, height=128, width=128, num_inference_steps=STEPS, output_type="pt",
            generator=torch.Generator().manual_seed(0),
        )  # fmt: skip
    return out.images


@pytest.fixture
def flux():
    pipe = build_pipeline("flux")
    return pipe, prompt_inputs("flux", pipe, true_cfg=False)


def calls_of(block) -> list:
    """Counts the calls of a cached block's own forward, beneath the cache's hook (which skips them)."""
    ref = block._diffusers_hook._fn_refs[0]
    inner, seen = ref.original_forward, []

    def counted(*args, **kwargs):
        seen.append(1)
        return inner(*args, **kwargs)

    ref.original_forward = counted
    return seen


@pytest.mark.parametrize("name", sorted(caches.CACHES))
def test_every_cache_runs_with_toma(flux, name):
    """Cache first, then ToMA: the images are merged (they differ from the cache alone) and finite."""
    pipe, inputs = flux
    caches.enable(pipe, name, steps=STEPS)
    cached = generate(pipe, inputs)
    apply(pipe, SMALL, inner="aot_eager")
    merged = generate(pipe, inputs)
    assert merged.shape == cached.shape == (1, 3, 128, 128)
    assert torch.isfinite(merged).all()
    assert not torch.allclose(merged, cached, atol=1e-3)


@pytest.mark.parametrize("name, toma_first", [("fbc", False), ("pab", True)])
def test_ratio_zero_with_a_cache_is_plain_compile_with_it(flux, name, toma_first):
    """At ratio 0, cache + ToMA in either order gives plain regional compile + cache's images exactly."""
    pipe, inputs = flux
    caches.enable(pipe, name, steps=STEPS)
    uncompile = compile_denoiser(pipe.transformer, regional=True, backend="aot_eager")
    plain = generate(pipe, inputs)
    uncompile()
    caches.disable(pipe)
    torch._dynamo.reset()
    if toma_first:
        apply(pipe, ratio=0, inner="aot_eager")
        caches.enable(pipe, name, steps=STEPS)
    else:
        caches.enable(pipe, name, steps=STEPS)
        apply(pipe, ratio=0, inner="aot_eager")
    assert torch.equal(generate(pipe, inputs), plain)


def test_skipped_blocks_keep_the_schedule(flux):
    """FirstBlockCache skips every block after the first from step 1 on: ToMA's steps still come from
    the scheduler, so with the threshold at 0 (nothing skipped) cache + ToMA is ToMA alone, and with it
    high the skipped blocks leave nothing stale (a second generation, no recompile, the same images)."""
    pipe, inputs = flux
    apply(pipe, SMALL.replace(select_every=2), inner="aot_eager")
    alone = generate(pipe, inputs)
    pipe.transformer.enable_cache(caches.diffusers.FirstBlockCacheConfig(threshold=0.0))
    assert torch.equal(generate(pipe, inputs), alone)
    pipe.transformer.disable_cache()
    pipe.transformer.enable_cache(caches.diffusers.FirstBlockCacheConfig(threshold=1e9))
    first = generate(pipe, inputs)  # compiles anew for the new cache
    tail = calls_of(pipe.transformer.single_transformer_blocks[-1])
    with torch._dynamo.config.patch(error_on_recompile=True):
        second = generate(pipe, inputs)
    assert len(tail) == 1  # step 0 only
    assert torch.equal(first, second) and torch.isfinite(first).all()
    assert not torch.allclose(first, alone, atol=1e-3)


def test_remove_leaves_the_cache_eager(flux):
    pipe, inputs = flux
    caches.enable(pipe, "fbc", steps=STEPS)
    eager = generate(pipe, inputs)
    apply(pipe, SMALL, inner="aot_eager")
    generate(pipe, inputs)
    remove(pipe)
    block = pipe.transformer.transformer_blocks[0]
    assert not isinstance(block._diffusers_hook._fn_refs[0].original_forward, CompiledForward)
    assert torch.equal(generate(pipe, inputs), eager)


def test_unknown_cache_names_the_choices(flux):
    with pytest.raises(ValueError, match=r"cache must be one of \['fastercache', 'fbc'"):
        caches.enable(flux[0], "teacache")
