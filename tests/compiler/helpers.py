"""Shared by the compiler tests: tiny models, a recording inner compiler, fixed destinations."""

from __future__ import annotations

import contextlib
import re

import torch

from toma_fx import toma_backend
from toma_fx.architectures import build, example_inputs
from toma_fx.bench.choosers import fixed_destinations
from toma_fx.ops import nodes
from toma_fx.passes import pipeline


class Recorder:
    """An inner compiler that keeps the rewritten graphs and runs them eagerly (or via `then`)."""

    def __init__(self, then=None):
        self.graphs = []
        self.then = then

    def __call__(self, gm, example_inputs):
        self.graphs.append(gm)
        return self.then(gm, example_inputs) if self.then else gm.forward


def merges_per_graph(rec: Recorder) -> list[int]:
    """The merge nodes in each graph `rec` kept."""
    return [sum(getattr(n.target, "__name__", "") == "merge" for n in g.graph.nodes) for g in rec.graphs]


def output(out) -> torch.Tensor:
    """The sample tensor of a diffusers output, a tuple, or a tensor."""
    if isinstance(out, torch.Tensor):
        return out
    return out[0] if isinstance(out, tuple) else out.sample


def tiny(name: str, *, batch: int = 2, latent=(16, 16), dtype=torch.float32):
    model = build(name, "tiny")
    model = model if dtype == torch.float32 else model.to(dtype)
    return model, example_inputs(name, model, batch=batch, latent=latent)


def compiled_run(model, inputs, backend, **compile_kwargs) -> torch.Tensor:
    torch._dynamo.reset()
    with torch.no_grad():
        return output(torch.compile(model, backend=backend, fullgraph=True, **compile_kwargs)(**inputs))


class FixedDestinations(Recorder):
    """Records the rewritten graph with `fixed_destinations` in place of the selection op."""

    def __call__(self, gm, example_inputs):
        for node in gm.graph.nodes:
            if node.target is nodes.select:
                node.target = fixed_destinations
        gm.recompile()
        return super().__call__(gm, example_inputs)


def small(**changes):
    """The backend for tiny models: every token set merged."""
    return toma_backend.configure(min_tokens=16, **changes)


@contextlib.contextmanager
def identity_merges():
    """Every site keeps every token (K = S per tile) and no site is dropped for its cost: merge and
    unmerge are then identities, so a rewritten graph must compute what the traced one does. This tests
    the plumbing (row segments, table gathers, patched sizes, unmerge placement) with no approximation."""
    real_plan, real_losses = pipeline.plan, pipeline._losses

    def keep_all(candidates, config):
        sites, skips = real_plan(candidates, config)
        for s in sites:
            s.layout = (*s.layout[:2], 0.0)
        return sites, skips

    pipeline.plan, pipeline._losses = keep_all, lambda result, before: []
    try:
        yield
    finally:
        pipeline.plan, pipeline._losses = real_plan, real_losses


def readable(gm) -> str:
    """Graph code with comments, the signature and input aliases dropped, and parameter names shortened."""
    from torch._dynamo.testing import normalize_gm

    code = normalize_gm(gm.print_readable(print_output=False))
    code = re.sub(r"l_self_(?:modules_)?((?:\w+?_modules_)*\w+?)_parameters_(weight|bias)_", _short, code)
    code = re.sub(r"def forward\(self, .*\):", "def forward(self, ...):", code)
    lines = [line.rstrip() for line in code.splitlines() if line.strip()]
    return "\n".join(line for line in lines if not re.fullmatch(r"\s+\S+ = L_\w+", line))


def _short(m: re.Match) -> str:
    return m.group(1).replace("_modules_", ".") + "." + m.group(2)


class SharedPool:
    """An inner compiler whose graphs return outputs in buffers shared by every graph it compiled, as
    CUDA graphs' memory pool does under `mode="reduce-overhead"`: a later call overwrites what an earlier
    one returned."""

    def __init__(self):
        self.buffers = {}

    def __call__(self, gm, example_inputs):
        def run(*args):
            result = []
            for i, t in enumerate(gm(*args)):
                buf = self.buffers.setdefault((i, t.shape, t.dtype), torch.empty_like(t))
                result.append(buf.copy_(t))
            return result

        return run
