"""What toma-fx hears from a diffusers pipeline: its `cache_context` branch, its scheduler's position,
and (for regional compiles) the latent grid of each denoiser call.

Pipelines wrap denoiser calls in `denoiser.cache_context("cond"/"uncond")`, which tells every stateful
hook's `StateManager`; a hook registered here only listens. The step is the context's `step_index` when
the pipeline gives one, else the scheduler's `step_index` (None before its first `step`: step 0),
counted from its `begin_index`. Schedulers without a `step_index` (DDIM, PNDM) fall back to counted calls,
restarted whenever the pipeline sets new timesteps. The grid is the latent's `(H, W)` or `(F, H, W)`,
or for packed tokens the grid their position ids or sizes give (`latent_grid`).
"""

from __future__ import annotations

import math
import weakref

import torch
from diffusers.hooks.hooks import BaseState, HookRegistry, ModelHook, StateManager

from toma_fx.call_grids import IdsLayouts, calling_with
from toma_fx.state import State
from toma_fx.steps import Source, new_call, track, untrack

__all__ = ["StepTracker", "track_steps"]

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
            self.begin_call()

    def begin_call(self) -> None:
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
    """Sets the latent grid of each denoiser call for the calls inside it, and starts a new call (runs
    in Python: only where the denoiser's forward, not its hooks, is compiled)."""

    def __init__(self, in_channels: int | None, contexts: _Contexts):
        super().__init__()
        self.in_channels = in_channels
        self.contexts = contexts
        self._ids = IdsLayouts()
        self._calls: list = []

    def pre_forward(self, module, *args, **kwargs):
        self.contexts.begin_call()
        call = calling_with(latent_grid(args, kwargs, self.in_channels, self._ids))
        call.__enter__()
        self._calls.append(call)
        return args, kwargs

    def post_forward(self, module, output):
        self._calls.pop().__exit__(None, None, None)
        return output


def latent_grid(args, kwargs, in_channels: int | None, ids: IdsLayouts) -> tuple[int, ...] | None:
    """The latent grid of a denoiser call, from what its inputs are, not what they are called: the
    first 4-D or 5-D floating input (`(B, C, H, W)`, `(B, C, F, H, W)` or `(B, F, C, H, W)`); else, for
    packed tokens `(B, N, C)`, the grid of a position-id input whose raster run holds N rows, or the
    first sizes given as ints (`num_frames, height, width`, `img_shapes`) whose product is N."""
    values = [*args, *kwargs.values()]
    tensors = [v for v in values if isinstance(v, torch.Tensor) and v.is_floating_point()]
    latent = next((t for t in tensors if t.dim() in (4, 5)), None)
    if latent is not None:
        if latent.dim() == 4:
            return tuple(latent.shape[-2:])
        frames_first = in_channels is not None and latent.shape[1] != in_channels
        return (
            tuple(latent.shape[1:2]) + tuple(latent.shape[-2:]) if frames_first else tuple(latent.shape[2:])
        )
    tokens = next((t for t in tensors if t.dim() == 3), None)
    if tokens is None:
        return None
    N = tokens.shape[1]
    for v in values:
        run = ids(v) if isinstance(v, torch.Tensor) and v is not tokens else None
        if run is not None and math.prod(run[1]) == N:
            return run[1]
    sizes = _ints(values)
    for k in (3, 2):
        for i in range(len(sizes) - k + 1):
            if math.prod(sizes[i : i + k]) == N and sum(s > 1 for s in sizes[i : i + k]) >= 2:
                return tuple(sizes[i : i + k])
    return None


def _ints(values) -> list[int]:
    """The ints among `values`, nested lists and tuples flattened, in order."""
    out = []
    for v in values:
        if isinstance(v, (list, tuple)):
            out += _ints(v)
        elif isinstance(v, int) and not isinstance(v, bool):
            out.append(v)
    return out


def track_steps(pipe, *, grids: bool = False) -> StepTracker:
    """Follow a diffusers pipeline's steps and CFG branches; returns a tracker with `.remove()`.

    `grids=True` also records the latent grid of every denoiser call (`call_grids.call_grid`), which
    block graphs of a regional compile cannot see; it must not be set when the denoiser's `nn.Module`
    call is compiled (`torch.compile(denoiser)`: the hook would run inside the compiled graph).
    `toma_fx.apply` compiles beneath the hooks, so it always sets it."""
    tracker = StepTracker(pipe, grids=grids)
    track(tracker.denoiser, tracker)
    return tracker


class StepTracker:
    """Reports (step index, branch, schedule token, call) for calls of `pipe`'s denoiser, and holds what
    toma-fx keeps for it between calls (`state`).

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
            in_channels = getattr(denoiser.config, "in_channels", None)
            registry.register_hook(_GridHook(in_channels, hook.contexts), _GRID_HOOK)
        self._pipe, self._denoiser, self._hook = weakref.ref(pipe), weakref.ref(denoiser), weakref.ref(hook)
        self.state = State()
        self._source: Source | None = None

    @property
    def denoiser(self):
        return self._denoiser()

    def source(self) -> Source:
        """(step index or None to count calls, branch, schedule token, denoiser call id), read once per
        denoiser call. The token is the identity of the scheduler's timesteps, which each generation
        sets anew."""
        contexts = self._hook().contexts
        if contexts.call and self._source is not None and self._source[3] == contexts.call:
            return self._source
        self._source = self._read(contexts)
        return self._source

    def _read(self, contexts: _Contexts) -> Source:
        context, call = contexts._context, contexts.call
        name = context.name if context is not None else None
        scheduler = getattr(self._pipe(), "scheduler", None)
        schedule = id(getattr(scheduler, "timesteps", None))  # set anew by each generation's set_timesteps
        if context is not None and context.step_index is not None:
            return context.step_index, name, schedule, call
        if scheduler is None or not hasattr(scheduler, "step_index"):
            return None, name, schedule, call
        index = scheduler.step_index
        return (0 if index is None else index - (scheduler.begin_index or 0)), name, schedule, call

    def remove(self) -> None:
        """Stop tracking: the hook leaves the denoiser, calls fall back to counted steps, and what was
        kept for the pipeline is dropped."""
        self.state.clear()
        denoiser = self._denoiser()
        if denoiser is not None:
            registry = HookRegistry.check_if_exists_or_initialize(denoiser)
            registry.remove_hook(_HOOK)
            registry.remove_hook(_GRID_HOOK)
            untrack(denoiser)
