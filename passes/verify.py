"""Shape-check a rewritten graph on fake tensors, refreshing the `example_value` of what changed.

After a rewrite the nodes it inserted, and every node downstream of them whose inputs changed shape,
run once on fake tensors (no data, no kernels), in Dynamo's own fake mode and on the fakes Dynamo made
for the graph's inputs; the rest of the graph keeps the values Dynamo traced (data-dependent sizes
included), so a node whose result has its traced shape again (after an unmerge) ends the re-run there.
This proves every inserted node and patched argument fits, and gives Inductor's pre-grad passes
example values that match the rewritten shapes. Inputs Dynamo did not trace (a variant's carried
tensors) are converted into that mode from `example_inputs`.
"""

from __future__ import annotations

import torch
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode
from torch.fx import GraphModule, Node, map_arg
from torch.fx.experimental.symbolic_shapes import ShapeEnv

__all__ = ["propagate"]


def propagate(gm: GraphModule, example_inputs: list) -> None:
    """Re-run the changed part of `gm` on fakes; raises whatever the first ill-shaped node raises."""
    placeholders = list(gm.graph.find_nodes(op="placeholder"))
    traced = [p.meta.get("example_value") for p in placeholders]
    mode = next((v.fake_mode for v in traced if isinstance(v, FakeTensor)), None)
    mode = mode or FakeTensorMode(allow_non_fake_inputs=True, shape_env=ShapeEnv())
    shape_env = mode.shape_env
    pending = list(shape_env.pending_fresh_unbacked_symbols) if shape_env is not None else []
    try:
        with mode, torch.no_grad():
            _run_changed(gm, mode, zip(placeholders, traced, example_inputs))
    finally:
        # A data-dependent op run again (`nonzero` downstream of a merge) makes fresh unbacked sizes
        # for our example values only; left pending, AOTAutograd would take them for its own.
        if shape_env is not None:
            shape_env.pending_fresh_unbacked_symbols[:] = pending


def _run_changed(gm: GraphModule, mode: FakeTensorMode, inputs) -> None:
    env: dict[Node, object] = {}
    changed: set[Node] = set()
    for p, value, x in inputs:
        if isinstance(value, FakeTensor) and value.fake_mode is mode and value.shape == x.shape:
            env[p] = value
        else:
            env[p] = p.meta["example_value"] = (
                mode.from_tensor(x, static_shapes=True) if isinstance(x, torch.Tensor) else x
            )
            changed.add(p)
    for node in gm.graph.nodes:
        if node.op in ("placeholder", "output"):
            continue
        if node.op == "get_attr":
            env[node] = getattr(gm, node.target)
            continue
        stale = "toma_site" in node.meta or "example_value" not in node.meta
        if not (stale or any(a in changed for a in node.all_input_nodes)):
            env[node] = node.meta["example_value"]
            continue
        args = map_arg(node.args, env.__getitem__)
        kwargs = map_arg(node.kwargs, env.__getitem__)
        if node.op == "call_method":
            out = getattr(args[0], node.target)(*args[1:], **kwargs)
        else:
            out = node.target(*args, **kwargs)
        old = node.meta.get("example_value")
        if not stale and _same_layout(old, out):
            env[node] = old  # an unmerge restored the traced shape: what follows stays as traced
            continue
        env[node] = node.meta["example_value"] = out
        changed.add(node)


def _same_layout(a, b) -> bool:
    """Same shapes, strides and dtypes (elementwise for tuples)."""
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_same_layout(x, y) for x, y in zip(a, b))
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        sizes = (*zip(a.shape, b.shape), *zip(a.stride(), b.stride()))
        return a.dim() == b.dim() and a.dtype == b.dtype and all(_same_size(x, y) for x, y in sizes)
    return False


def _same_size(x, y) -> bool:
    """Equal sizes, compared without guarding on data-dependent ones (their expressions must match)."""
    if isinstance(x, torch.SymInt) or isinstance(y, torch.SymInt):
        expr = lambda v: v.node.expr if isinstance(v, torch.SymInt) else v  # noqa: E731
        return expr(x) == expr(y)
    return x == y
