"""diffusers' step caches by name, configured for a pipeline, to stack with ToMA.

    enable(pipe, "fbc")          pipe's denoiser.enable_cache(FirstBlockCacheConfig(threshold=0.2))
    toma_fx.apply(pipe, ratio=0.5)                   before or after: `toma_fx.beneath_hooks`
    disable(pipe)

The settings are the caches' own published defaults where they have them; those that need the
pipeline (the current timestep, the number of steps, a guidance-distilled Flux) read it from `pipe`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import diffusers

from toma_fx.pipelines import denoiser_of

__all__ = ["CACHES", "disable", "enable"]


def _timestep(pipe):
    """The timestep of the step in progress: the pipeline's `current_timestep` where it keeps one (Flux,
    the DiT pipelines), else its scheduler's."""
    t = getattr(pipe, "current_timestep", None)
    if t is not None:
        return t
    scheduler = pipe.scheduler
    return scheduler.timesteps[scheduler.step_index or 0]


def _fbc(pipe, steps: int):
    return diffusers.FirstBlockCacheConfig(threshold=0.2)  # ParaAttention's Flux setting (~1.8x)


def _taylorseer(pipe, steps: int):
    return diffusers.TaylorSeerCacheConfig(cache_interval=5, disable_cache_before_step=3)


def _magcache(pipe, steps: int):
    from diffusers.hooks.mag_cache import FLUX_MAG_RATIOS

    return diffusers.MagCacheConfig(num_inference_steps=steps, mag_ratios=FLUX_MAG_RATIOS)


def _fastercache(pipe, steps: int):
    return diffusers.FasterCacheConfig(
        spatial_attention_block_skip_range=2,
        current_timestep_callback=lambda: _timestep(pipe),
        attention_weight_callback=lambda _: 0.3,
        is_guidance_distilled=not hasattr(pipe, "do_classifier_free_guidance"),
    )


def _pab(pipe, steps: int):
    return diffusers.PyramidAttentionBroadcastConfig(
        spatial_attention_block_skip_range=2, current_timestep_callback=lambda: _timestep(pipe)
    )


def _textkv(pipe, steps: int):
    return diffusers.TextKVCacheConfig()


CACHES: dict[str, Callable] = {
    "fbc": _fbc,
    "taylorseer": _taylorseer,
    "magcache": _magcache,
    "fastercache": _fastercache,
    "pab": _pab,
    "textkv": _textkv,
}
"""Name -> `(pipe, steps) -> diffusers cache config`."""


def enable(pipe, name: str, *, steps: int = 28, **settings) -> None:
    """Enable cache `name` (`CACHES`) on `pipe`'s denoiser, for generations of `steps` steps, with some
    fields of its config changed (`threshold=0.5`)."""
    if name not in CACHES:
        raise ValueError(f"cache must be one of {sorted(CACHES)}, got {name!r}")
    config = CACHES[name](pipe, steps)
    fields = {f.name for f in dataclasses.fields(config)}
    unknown = sorted(set(settings) - fields)
    if unknown:
        raise ValueError(f"{type(config).__name__} has no fields {unknown}; its fields: {sorted(fields)}")
    denoiser_of(pipe).enable_cache(dataclasses.replace(config, **settings))


def disable(pipe) -> None:
    denoiser_of(pipe).disable_cache()
