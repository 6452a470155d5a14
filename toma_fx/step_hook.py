"""The step of a diffusers pipeline: its `cache_context` branch and its scheduler's position.

Pipelines wrap denoiser calls in `denoiser.cache_context("cond"/"uncond")`, which tells every stateful
hook's `StateManager`; a hook registered here only listens. The step is the context's `step_index` when
the pipeline gives one, else the scheduler's `step_index` (None before its first `step`: step 0),
counted from its `begin_index`. Schedulers without a `step_index` (DDIM, PNDM) fall back to counted calls,
restarted whenever the pipeline sets new timesteps.
"""

from __future__ import annotations

import weakref

from diffusers.hooks.hooks import BaseState, HookRegistry, ModelHook, StateManager

from toma_fx.steps import new_call, untrack

__all__ = ["StepTracker"]

_HOOK = "toma_fx_steps"


class _NoState(BaseState):
    def reset(self, *args, **kwargs) -> None:
        pass


class _Contexts(StateManager):
    """Hears `cache_context` enter and leave; each entry is a new denoiser call."""

    call = 0

    def set_context(self, context) -> None:
        super().set_context(context)
        if context is not None:
            self.call = new_call()


class _ContextHook(ModelHook):
    _is_stateful = True  # only stateful hooks hear cache_context

    def __init__(self):
        super().__init__()
        self.contexts = _Contexts(_NoState)

    def reset_state(self, module):
        self.contexts.reset()
        return module


class StepTracker:
    """Reports (step index, branch, generation token) for calls of `pipe`'s denoiser.

    Holds the pipeline, denoiser and hook weakly: trackers are found through the denoiser's parameters,
    and a strong path back to them would keep a deleted pipeline alive."""

    def __init__(self, pipe):
        denoiser = getattr(pipe, "transformer", None) or getattr(pipe, "unet", None)
        if denoiser is None:
            raise ValueError(f"{type(pipe).__name__} has neither a `transformer` nor a `unet` to track")
        registry = HookRegistry.check_if_exists_or_initialize(denoiser)
        registry.remove_hook(_HOOK)
        hook = _ContextHook()
        registry.register_hook(hook, _HOOK)
        self._pipe, self._denoiser, self._hook = weakref.ref(pipe), weakref.ref(denoiser), weakref.ref(hook)

    @property
    def denoiser(self):
        return self._denoiser()

    def now(self) -> tuple[int | None, str | None, int | None, int]:
        """(step index or None to count calls, branch, generation token, denoiser call id)."""
        contexts = self._hook().contexts
        context = contexts._context
        name, call = (context.name, contexts.call) if context is not None else (None, 0)
        if context is not None and context.step_index is not None:
            return context.step_index, name, None, call
        scheduler = getattr(self._pipe(), "scheduler", None)
        if scheduler is None or not hasattr(scheduler, "step_index"):
            return None, name, id(getattr(scheduler, "timesteps", None)), call
        index = scheduler.step_index
        return (0 if index is None else index - (scheduler.begin_index or 0)), name, None, call

    def remove(self) -> None:
        """Stop tracking: the hook leaves the denoiser, calls fall back to counted steps."""
        denoiser = self._denoiser()
        if denoiser is not None:
            HookRegistry.check_if_exists_or_initialize(denoiser).remove_hook(_HOOK)
            untrack(denoiser)
