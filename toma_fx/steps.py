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

The clocks that turn these into generations belong to whoever owns the state (`state.State`): a
tracked pipeline, or the backend that compiled an untracked model. Two pipelines used in turn therefore
never start each other's generations.
"""

from __future__ import annotations

import contextlib
import itertools
from contextvars import ContextVar
from dataclasses import dataclass

from torch.utils.weak import WeakIdKeyDictionary

__all__ = ["Clock", "Now", "Source", "reset_steps", "source_of", "step", "track", "untrack"]


@dataclass(frozen=True)
class Now:
    """Where a call is: its CFG branch (`context`, None when unnamed), step index, generation (an opaque
    token: calls of one generation have equal ones), and the denoiser call it is part of (0: unknown).
    Blocks share destinations only within one denoiser call."""

    context: str | None
    index: int
    generation: tuple
    call: int = 0


Source = tuple[int | None, str | None, object, int]
"""What a step source reports: (step index, or None to count calls; branch; schedule token; call id)."""

_explicit: ContextVar[Source | None] = ContextVar("toma_fx_step", default=None)
_calls = itertools.count(1)
_trackers = WeakIdKeyDictionary()  # denoiser parameter -> its pipeline's StepTracker: an index, no state
_epoch = 0  # bumped by reset_steps; every clock restarts when it sees a new value


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
    """Calls of `denoiser` take their step, branch and state from `tracker` (`pipeline_hooks`)."""
    for p in denoiser.parameters():
        _trackers[p] = tracker


def untrack(denoiser) -> None:
    for p in denoiser.parameters():
        _trackers.pop(p, None)


def tracker_of(key):
    """The `StepTracker` of the denoiser that block parameter `key` belongs to, or None."""
    return _trackers.get(key)


def reset_steps() -> None:
    """Start a new generation for every context and block (for loops that rely on counted calls)."""
    global _epoch
    _epoch += 1


def new_call() -> int:
    """A fresh denoiser-call id, for step sources that see calls begin."""
    return next(_calls)


def source_of(tracker) -> Source | None:
    """The explicit step when one is set, else what `tracker` reports (None: count calls)."""
    given = _explicit.get()
    if given is not None:
        return given
    return tracker.source() if tracker is not None else None


class Clock:
    """Turns step indices into generations, per CFG branch, and counts calls where no index is given."""

    def __init__(self):
        self._epoch = _epoch
        self._last: dict[str | None, tuple] = {}  # context -> (last index seen, generation, schedule token)
        self._counts = WeakIdKeyDictionary()  # block key -> {context: (token, calls)}

    def now(self, key, source: Source | None) -> Now:
        """The step of a call of the block identified by `key` (a parameter, or any weak-referenceable
        object), from what its step source reports; counts the call when no index is given."""
        if self._epoch != _epoch:
            self.clear()
        index, context, token, call = source if source is not None else (None, None, None, 0)
        if index is None:
            token = (self._epoch, token)  # a new token (a new schedule in the pipeline) restarts the count
            calls = self._counts.setdefault(key, {})
            seen, count = calls.get(context, (token, -1))
            count = count + 1 if seen == token else 0
            calls[context] = (token, count)
            return Now(context, count, token, call)
        last, generation, last_token = self._last.get(context, (-1, 0, token))
        if index < last or token != last_token:  # a new schedule (one-step generations have index 0 only)
            generation += 1
        self._last[context] = (index, generation, token)
        return Now(context, index, (self._epoch, generation), call)

    def clear(self) -> None:
        self._epoch = _epoch
        self._last.clear()
        self._counts.clear()
