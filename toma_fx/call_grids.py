"""The grid each call brings, and rewrites compiled per grid.

A rewrite can depend on values Dynamo does not guard on: the latent grid of the denoiser call (the
block graphs of a regional compile see tokens only, and a 1024x768 then a 768x1024 image have the same
token count) and the coordinates held by position-id inputs (Flux's `img_ids` for a transposed
resolution have the same shape). So the backend keys its compiled rewrites by those values, read on
every call:

    key = (the call's latent grid, if a site took its grid from it,
           the raster run of each position-id input, if any)

and compiles the rewrite for a new key the first time it is seen: no Dynamo recompile, and the third
call of either size finds its graph. Reading ids syncs a GPU, so each ids tensor is read once
(`IdsLayouts`, by identity and version: pipelines make them once per generation).

The latent grid of a call is set by `toma_fx.apply`'s hook around each denoiser call (`calling_with`),
in a context variable: it belongs to the call in progress, never to a module.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Callable
from contextvars import ContextVar

import torch

from toma_fx.passes.rows.ids import coordinate_table, raster_run

__all__ = ["IdsLayouts", "PerCallGrid", "call_grid", "calling_with"]

_current: ContextVar[tuple[int, ...] | None] = ContextVar("toma_fx_call_grid", default=None)


def call_grid() -> tuple[int, ...] | None:
    """The latent grid of the denoiser call in progress, `(H, W)` or `(F, H, W)`, when a hook set it."""
    return _current.get()


@contextlib.contextmanager
def calling_with(grid: tuple[int, ...] | None):
    """Calls inside have `grid` as their latent grid."""
    token = _current.set(grid)
    try:
        yield
    finally:
        _current.reset(token)


class IdsLayouts:
    """`(start, grid)` of the raster run of position-id tensors (`rows/ids.py`), read once per tensor
    and version; the last `size` tensors are remembered."""

    def __init__(self, size: int = 8):
        self.size = size
        self._seen: OrderedDict[tuple, tuple | None] = OrderedDict()

    def __call__(self, value) -> tuple | None:
        if not isinstance(value, torch.Tensor):
            return None
        key = (id(value), value._version, value.data_ptr(), tuple(value.shape))
        if key not in self._seen:
            table = coordinate_table(value)
            self._seen[key] = raster_run(table[0]) if table is not None else None
            if len(self._seen) > self.size:
                self._seen.popitem(last=False)
        return self._seen[key]


class PerCallGrid:
    """Runs the rewrite compiled for the grids of each call.

    Args:
        build: `build(args, call_grid) -> callable`, the rewrite for a call's inputs and latent grid,
            compiled.
        uses_call_grid: whether the rewrite took a grid from the call.
        ids_inputs: indices of the graph inputs holding position ids.
        first: `(args, callable)` of the compile Dynamo asked for.
    """

    def __init__(self, build: Callable, uses_call_grid: bool, ids_inputs: tuple[int, ...], first):
        self._build = build
        self._uses_call_grid = uses_call_grid
        self._ids_inputs = ids_inputs
        self._ids = IdsLayouts()
        args, fn = first
        self._compiled = {self._key(args): fn}

    def _key(self, args) -> tuple:
        grid = call_grid() if self._uses_call_grid else None
        return (grid, *(self._ids(args[i]) for i in self._ids_inputs))

    def __call__(self, *args):
        key = self._key(args)
        fn = self._compiled.get(key)
        if fn is None:
            fn = self._compiled[key] = self._build(list(args), call_grid())
        return fn(*args)

    @property
    def grids(self) -> int:
        """How many rewrites are compiled."""
        return len(self._compiled)
