"""The ways the pipeline benchmark runs a denoiser: eager, plain torch.compile, ToMA, tomesd, and
each compiled one with a diffusers step cache.

A `Method` installs itself on a pipeline in place and returns the function that undoes it, so one
pipeline (one set of weights, one seed) serves every method in turn. Compiled methods compile the same
way: regionally (each repeated block, `dynamic=False`, `fullgraph=True`) unless `regional=False`, so a
speedup compares merging, not two ways of compiling.

tomesd (ToMe for Stable Diffusion, the `tomesd` package) patches the `BasicTransformerBlock`s of a
UNet; it runs here with `use_rand=False` (deterministic destinations, so a seed gives one image and
Dynamo traces it without graph breaks) and on the same levels ToMA merges (`max_downsample` from
`min_tokens`). It merges self-attention tokens only, its recommended setting.

ToDo (`bench/todo.py`) downsamples the keys and values of the attention over one token grid, inside
the compiled graph (`ToDoBackend`), at the ratios its 2x1 and 2x2 cells give (0.5, 0.75).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from toma_fx import caches
from toma_fx.bench.todo import KVDownsampling, ToDoBackend
from toma_fx.config import ToMAConfig
from toma_fx.explain import explain
from toma_fx.ops.baselines import CELLS
from toma_fx.pipelines import apply, compile_denoiser, denoiser_of, remove

__all__ = ["Method", "compiled", "eager", "todo", "toma", "tomesd", "tomesd_skip_reason", "with_cache"]

Undo = Callable[[], None]


@dataclass(frozen=True)
class Method:
    name: str
    """The row's label, e.g. "toma 0.5"."""
    kind: str
    """"eager", "compile", "toma", "tomesd" or "todo": what plots draw as one line."""
    install: Callable[[object], Undo]
    """`pipe -> undo`: changes the pipeline in place (compiles or patches it)."""
    ratio: float = 0.0
    """Fraction of tokens merged where merged."""
    flop_ideal: Callable[[torch.nn.Module, dict], float] | None = None
    """`(denoiser, call kwargs) -> FLOPs unmerged / FLOPs merged`; None: nothing merged (1.0)."""


def with_cache(method: Method, cache: str, *, steps: int, **settings) -> Method:
    """`method` on the pipeline with diffusers' step cache `cache` (`toma_fx.caches`, with `settings`
    changed) enabled first. Its FLOP-ideal ratio stays per denoiser call: the steps the cache skips
    show in the timings."""

    def install(pipe) -> Undo:
        caches.enable(pipe, cache, steps=steps, **settings)
        undo = method.install(pipe)

        def undo_both():
            undo()
            caches.disable(pipe)

        return undo_both

    return Method(f"{method.name} + {cache}", method.kind, install, method.ratio, method.flop_ideal)


def eager() -> Method:
    return Method("eager", "eager", lambda pipe: lambda: None)


def compiled(*, regional: bool = True, compiler: str = "inductor") -> Method:
    """Plain `torch.compile` (with Inductor unless `compiler` says otherwise): the baseline every
    speedup is measured against."""

    def install(pipe) -> Undo:
        return compile_denoiser(denoiser_of(pipe), regional=regional, backend=compiler)

    return Method("compile", "compile", install)


def toma(config: ToMAConfig, *, regional: bool = True, inner="inductor", name: str | None = None) -> Method:
    """`toma_fx.apply(pipe, config)`."""

    def install(pipe) -> Undo:
        apply(pipe, config, regional=regional, inner=inner)
        return lambda: remove(pipe)

    def flop_ideal(denoiser, kwargs) -> float:
        report = explain(denoiser, **kwargs, config=config)
        if not report.regions and config.ratio > 0:  # a silent 1.0x would read as a failed speedup
            why = report.skipped[0].why if report.skipped else "no attention or MLP found"
            raise ValueError(
                f"nothing to merge in {type(denoiser).__name__} (first candidate skipped: {why})"
            )
        return report.speedup

    label = name or f"toma {config.ratio:g}"
    return Method(label, "toma", install, ratio=config.ratio, flop_ideal=flop_ideal)


def tomesd(ratio: float, *, max_downsample: int, regional: bool = True, compiler: str = "inductor") -> Method:
    """tomesd's `apply_patch(pipe, ratio, max_downsample, use_rand=False)`, then compiled as `compiled()`."""
    import tomesd as tomesd_lib

    def install(pipe) -> Undo:
        unet = denoiser_of(pipe)
        tomesd_lib.apply_patch(unet, ratio=ratio, max_downsample=max_downsample, use_rand=False)
        # tomesd makes its generator on first use, which Dynamo cannot trace; unused with use_rand=False.
        unet._tome_info["args"]["generator"] = torch.Generator(unet.device)
        # tomesd makes one class per block; Dynamo guards on the class, so every block would compile anew.
        patched = [m for m in unet.modules() if type(m).__name__ == "ToMeBlock"]
        for block in patched:
            block.__class__ = type(patched[0])
        uncompile = compile_denoiser(denoiser_of(pipe), regional=regional, backend=compiler)

        def undo():
            uncompile()
            tomesd_lib.remove_patch(unet)

        return undo

    def flop_ideal(denoiser, kwargs) -> float:
        # tomesd merges in eager code, so its FLOPs are counted on an eager call, before and after. Its
        # hook reads the latent size from the first positional argument, as pipelines pass it.
        kwargs = dict(kwargs)
        kwargs = {"args": (kwargs.pop("sample"),), **kwargs}
        before = _flops(denoiser, kwargs)
        tomesd_lib.apply_patch(denoiser, ratio=ratio, max_downsample=max_downsample, use_rand=False)
        try:
            return before / _flops(denoiser, kwargs)
        finally:
            tomesd_lib.remove_patch(denoiser)

    return Method(f"tomesd {ratio:g}", "tomesd", install, ratio=ratio, flop_ideal=flop_ideal)


def todo(ratio: float, *, grid: tuple[int, int], regional: bool = True, compiler: str = "inductor") -> Method:
    """ToDo at `ratio` (0.5 or 0.75: keys and values kept by 2x1 or 2x2 cells) on the attention over the
    `grid` image tokens (and the prompt's rows before them, if any), compiled as `compiled()` with the
    downsampling in the graph."""
    factor = CELLS[ratio]

    def install(pipe) -> Undo:
        backend = ToDoBackend(grid, factor, text=None, inner=compiler)
        return compile_denoiser(denoiser_of(pipe), regional=regional, backend=backend)

    def flop_ideal(denoiser, kwargs) -> float:
        before = _flops(denoiser, kwargs)
        mode = KVDownsampling(grid, factor, text=None)
        with mode:
            after = _flops(denoiser, kwargs)
        if not mode.applied:  # a silent 1.0x would read as ToDo's speed
            raise ValueError(f"ToDo found no attention over a {grid[0]}x{grid[1]} token grid")
        return before / after

    return Method(f"todo {ratio:g}", "todo", install, ratio=ratio, flop_ideal=flop_ideal)


def tomesd_skip_reason(pipe) -> str | None:
    """Why tomesd cannot run on `pipe`, or None when it can."""
    import importlib.util

    if importlib.util.find_spec("tomesd") is None:
        return "the tomesd package is not installed (pip install tomesd)"
    denoiser = denoiser_of(pipe)
    if getattr(pipe, "unet", None) is None:
        return f"tomesd patches a UNet's BasicTransformerBlocks; {type(denoiser).__name__} is not a UNet"
    if not any(type(m).__name__ == "BasicTransformerBlock" for m in denoiser.modules()):
        return f"{type(denoiser).__name__} has no BasicTransformerBlock for tomesd to patch"
    return None


def tomesd_max_downsample(latent: tuple[int, int], min_tokens: int) -> int:
    """The deepest UNet level (down-sampling 1, 2, 4 or 8) with at least `min_tokens` tokens: tomesd then
    merges the levels ToMA merges."""
    h, w = latent
    return max([d for d in (1, 2, 4, 8) if (h // d) * (w // d) >= min_tokens], default=1)


def _flops(module: torch.nn.Module, kwargs: dict) -> int:
    """FLOPs of `module(*kwargs["args"], **rest)`, attention included: the counter does not see CPU's
    fused attention kernel, so attention runs as SDPA's math path here, whose matmuls it counts."""
    kwargs = dict(kwargs)
    args = kwargs.pop("args", ())
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), counter:
        module(*args, **kwargs)
    return counter.get_total_flops()
