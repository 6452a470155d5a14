"""`toma_backend`: the torch.compile backend that merges tokens, then hands the graph to Inductor.

    model = torch.compile(model, backend=toma_backend)                      # defaults (ratio 0.5)
    model = torch.compile(model, backend=toma_backend.configure(ratio=0.25, tile=(8, 8)))
    model = torch.compile(model, backend="toma", mode="max-autotune")      # by name, once installed
    model.compile_repeated_blocks(backend=toma_backend.configure(grid=(64, 64)), fullgraph=True)

`mode=` and `options=` given to `torch.compile` reach Inductor unchanged, except option keys starting
with `toma.` (`options={"toma.ratio": 0.25}`), which override `ToMAConfig` fields: the one way to
configure the backend when it is named by string.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch.fx import GraphModule

from toma_fx.call_grids import PerCallGrid, call_grid
from toma_fx.config import ToMAConfig
from toma_fx.dispatch import compile_merged
from toma_fx.ops import nodes
from toma_fx.passes.pipeline import Result, graph_name, run, warn_fallback
from toma_fx.state import State

__all__ = ["ToMABackend", "toma_backend"]


class ToMABackend:
    """A torch.compile backend: Dynamo graph -> ToMA passes -> `inner` compiler.

    Args:
        config: what to merge; `ToMAConfig()` by default.
        inner: what compiles the rewritten graph: "inductor" (default), or another registered backend
            name or backend callable ("aot_eager" runs the rewritten graph without Inductor, for
            debugging numerics). `mode`/`options` reach only Inductor.

    What is kept between calls of models no pipeline tracks (`toma_fx.track_steps`) lives in `state`:
    one per backend, so each `configure`d backend keeps its own.
    """

    def __init__(self, config: ToMAConfig | None = None, *, inner="inductor"):
        if config is not None and not isinstance(config, ToMAConfig):
            raise ValueError(f"config must be a ToMAConfig, got {type(config).__name__}")
        self.config = config or ToMAConfig()
        self.inner = inner
        self.state = State()

    def configure(self, config: ToMAConfig | None = None, /, *, inner=None, **changes) -> ToMABackend:
        """A new backend with `config`, or with this one's config and some `ToMAConfig` fields changed."""
        base = config if config is not None else self.config
        if not isinstance(base, ToMAConfig):
            raise ValueError(f"config must be a ToMAConfig, got {type(base).__name__}")
        return ToMABackend(base.replace(**changes) if changes else base, inner=inner or self.inner)

    def __call__(self, gm: GraphModule, example_inputs: list, *, mode: str | None = None, options=None):
        inductor_options, config = self._split_options(options)

        @functools.cache
        def traced() -> Callable:  # the graph as traced: ratio 0, or a rewrite that falls back
            return self._compile(gm, example_inputs, mode, inductor_options)

        if config.ratio == 0:
            return traced()

        def build(args: list, grid) -> tuple[Result, Callable]:
            result = run(gm, args, config, call_grid=grid)
            if result.gm is gm:
                return result, traced()
            try:
                compile_fn = lambda g, inputs: self._compile(g, inputs, mode, inductor_options)  # noqa: E731
                clone = self._replays_outputs(mode, inductor_options)
                return result, compile_merged(
                    result, gm, args, config, compile_fn, traced, state=self.state, clone=clone
                )
            except Exception as e:  # a lowering failure on the rewrite must not cost the user the compile
                why = f"{type(e).__name__}: {e}"
                warn_fallback(
                    f"compiling the rewritten {graph_name(gm)} failed, compiling it unchanged: {why}"
                )
                return result, traced()

        result, fn = build(example_inputs, call_grid())
        if not (result.uses_call_grid or result.ids_inputs):
            return fn
        return PerCallGrid(lambda args, grid: build(args, grid)[1], result.uses_call_grid, result.ids_inputs,
                           (example_inputs, fn))  # fmt: skip

    def _split_options(self, options) -> tuple[dict, ToMAConfig]:
        options = dict(options or {})
        ours = {k[len("toma.") :]: options.pop(k) for k in list(options) if k.startswith("toma.")}
        return options, self.config.replace(**ours) if ours else self.config

    def _replays_outputs(self, mode, options: dict) -> bool:
        """Whether compiled calls may hand out memory a later call overwrites: Inductor with CUDA graphs
        (`mode="reduce-overhead"`), or an inner backend that is not Inductor and does not promise
        otherwise (an attribute `fresh_outputs = True`; "aot_eager" and "eager" run the graph)."""
        if self.inner in ("aot_eager", "eager") or getattr(self.inner, "fresh_outputs", False):
            return False
        if self.inner != "inductor":
            return True
        return bool(_inductor_patches(mode, options).get("triton.cudagraphs"))

    def _compile(self, gm: GraphModule, example_inputs: list, mode, options: dict):
        if self.inner == "inductor":
            from torch._inductor.compile_fx import compile_fx

            patches = _inductor_patches(mode, options)
            if any(gm.graph.find_nodes(op="call_function", target=f) for f in nodes.GRAPH_FUNCTIONS):
                from torch._inductor import config as inductor_config

                marked = {**inductor_config.unsafe_marked_cacheable_functions, **nodes.cache_keys()}
                patches["unsafe_marked_cacheable_functions"] = marked
            return compile_fx(gm, example_inputs, config_patches=patches or None)
        inner = torch._dynamo.lookup_backend(self.inner) if isinstance(self.inner, str) else self.inner
        return inner(gm, example_inputs)

    def __repr__(self) -> str:
        return f"ToMABackend({self.config}, inner={self.inner!r})"


def _inductor_patches(mode, options: dict) -> dict:
    """Inductor's config for `mode` (`torch.compile`'s) with `options` over it."""
    from torch._inductor import list_mode_options

    return {**(list_mode_options(mode) if mode else {}), **options}


toma_backend = ToMABackend()
"""The default backend; `toma_backend.configure(...)` makes a configured one. Registered as "toma" through
the `torch_dynamo_backends` entry point (pyproject.toml), so importing toma-fx does not import Dynamo."""
