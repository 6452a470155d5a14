"""What toma-fx hears from a diffusers pipeline: its `cache_context` branch, its scheduler's position,
and (for regional compiles) the latent grid of each denoiser call.

Pipelines wrap denoiser calls in `denoiser.cache_context("cond"/"uncond")`, which tells every stateful
hook's `StateManager`; a hook registered here only listens. The step is the context's `step_index` when
the pipeline gives one, else the scheduler's `step_index` (None before its first `step`: step 0),
counted from its `begin_index`. Schedulers without a `step_index` (DDIM, PNDM) fall back to counted calls,
restarted whenever the pipeline sets new timesteps. The grid is the `(H, W)` of a 4-D latent input, or
the token grid of Flux-style `img_ids`.
"""

from __future__ import annotations

import weakref

import torch
from diffusers.hooks.hooks import BaseState, HookRegistry, ModelHook, StateManager

from toma_fx.passes.grid import id_grids
from toma_fx.steps import new_call, set_latent_grid, untrack

__all__ = ["StepTracker"]

_HOOK = "toma_fx_steps"
_GRID_HOOK = "toma_fx_grid"


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


class _GridHook(ModelHook):
    """Records the latent grid before each denoiser call (runs in Python: only for regional compiles)."""

    def __init__(self):
        super().__init__()
        self._tokens, self._grid = None, None

    def pre_forward(self, module, *args, **kwargs):
        x = kwargs.get("sample", kwargs.get("hidden_states", args[0] if args else None))
        if isinstance(x, torch.Tensor) and x.dim() == 4:
            set_latent_grid(tuple(x.shape[-2:]))
        elif isinstance(x, torch.Tensor) and x.dim() == 3 and kwargs.get("img_ids") is not None:
            if x.shape[1] != self._tokens:  # reading the ids syncs a GPU: only when the token count changes
                self._tokens, self._grid = x.shape[1], id_grids([kwargs["img_ids"]]).get(x.shape[1])
            set_latent_grid(self._grid)
        return args, kwargs

    def post_forward(self, module, output):
        set_latent_grid(None)  # compiles outside this call must not see it
        return output


class StepTracker:
    """Reports (step index, branch, generation token) for calls of `pipe`'s denoiser.

    Holds the pipeline, denoiser and hook weakly: trackers are found through the denoiser's parameters,
    and a strong path back to them would keep a deleted pipeline alive."""

    def __init__(self, pipe, *, grids: bool = False):
        denoiser = getattr(pipe, "transformer", None) or getattr(pipe, "unet", None)
        if denoiser is None:
            raise ValueError(f"{type(pipe).__name__} has neither a `transformer` nor a `unet` to track")
        registry = HookRegistry.check_if_exists_or_initialize(denoiser)
        registry.remove_hook(_HOOK)
        registry.remove_hook(_GRID_HOOK)
        hook = _ContextHook()
        registry.register_hook(hook, _HOOK)
        if grids:
            registry.register_hook(_GridHook(), _GRID_HOOK)
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
            registry = HookRegistry.check_if_exists_or_initialize(denoiser)
            registry.remove_hook(_HOOK)
            registry.remove_hook(_GRID_HOOK)
            untrack(denoiser)
