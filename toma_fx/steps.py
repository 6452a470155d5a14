"""Knowing the step: which denoising step, generation and CFG branch a compiled call belongs to.

The first source that applies wins:

1. **Explicit**, for any sampling loop:

       for i, t in enumerate(timesteps):
           with toma_fx.step(i):                         # or step(i, context="uncond") for a 2nd call
               eps = model(x, t)

2. **diffusers pipelines**: `toma_fx.track_steps(pipe)` reads the branch from the pipeline's
   `cache_context("cond"/"uncond")` and the step from its scheduler (`toma_fx.pipeline_hooks`).
3. **Counted calls**: call k of a block is step k. Right for loops that call the denoiser once per step;
   generations follow on from each other until `toma_fx.reset_steps()`.

A step index lower than the last one seen in a context starts a new generation, and so does a new
schedule token (a pipeline's new timesteps), so an interrupted generation followed by a new one, or
one-step generations in a row, each start a fresh schedule. Selections are kept per context (CFG branch):
cond and uncond never share destinations. A CFG batch (cond and uncond in one call) is one context whose
destinations are selected per sample.
"""

from __future__ import annotations

import contextlib
import itertools
from contextvars import ContextVar
from dataclasses import dataclass

from torch.utils.weak import WeakIdKeyDictionary

__all__ = ["Now", "now", "reset_steps", "step", "track", "untrack"]


@dataclass(frozen=True)
class Now:
    """Where a call is: its CFG branch (`context`, None when unnamed), step index, generation (an opaque
    token: calls of one generation have equal ones), and the denoiser call it is part of (0: unknown).
    Blocks share destinations only within one denoiser call."""

    context: str | None
    index: int
    generation: tuple
    call: int = 0


_explicit: ContextVar[tuple | None] = ContextVar("toma_fx_step", default=None)
_calls = itertools.count(1)
_trackers = WeakIdKeyDictionary()  # denoiser parameter -> its pipeline's StepTracker
_counts = WeakIdKeyDictionary()  # block key -> {context: (generation token, calls)}, for counted steps
_clocks: dict[str | None, tuple] = {}  # context -> (last index seen, generation, schedule token)
_epoch = 0  # bumped by reset_steps: a new generation everywhere


@contextlib.contextmanager
def step(index: int, context: str | None = None):
    """Calls inside belong to step `index` (>= 0) of the current generation, in branch `context`."""
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise ValueError(f"step index must be an int >= 0, got {index!r}")
    if context is not None and not isinstance(context, str):
        raise ValueError(f"context must be a str or None, got {context!r}")
    token = _explicit.set((index, context, None, next(_calls)))
    try:
        yield
    finally:
        _explicit.reset(token)


def track(denoiser, tracker) -> None:
    """Calls of `denoiser` take their step and branch from `tracker` (`pipeline_hooks.track_steps`)."""
    for p in denoiser.parameters():
        _trackers[p] = tracker


def untrack(denoiser) -> None:
    for p in denoiser.parameters():
        _trackers.pop(p, None)


def reset_steps() -> None:
    """Start a new generation for every context and block (for loops that rely on counted calls)."""
    global _epoch
    _epoch += 1
    _counts.clear()
    _clocks.clear()


def new_call() -> int:
    """A fresh denoiser-call id, for step sources that see calls begin."""
    return next(_calls)


def now(key) -> Now:
    """The step of a call of the block identified by `key` (a parameter, or any weak-referenceable
    object); counts the call when no explicit or pipeline step index applies."""
    given = _explicit.get()
    if given is None:
        tracker = _trackers.get(key)
        given = tracker.now() if tracker is not None else (None, None, None, 0)
    index, context, token, call = given
    if index is None:
        token = (_epoch, token)  # a new token (a new schedule in the pipeline) restarts the count
        calls = _counts.setdefault(key, {})
        seen, count = calls.get(context, (token, -1))
        count = count + 1 if seen == token else 0
        calls[context] = (token, count)
        return Now(context, count, token, call)
    last, generation, last_token = _clocks.get(context, (-1, 0, token))
    if index < last or token != last_token:  # a new schedule (one-step generations have index 0 only)
        generation += 1
    _clocks[context] = (index, generation, token)
    return Now(context, index, (_epoch, generation), call)
