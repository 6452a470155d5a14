"""`row_origins`: the origin of every axis of every tensor in a graph, in one pass in graph order.

Graph inputs are the roots: dim d of input x is one factor `(x, d)`. Each node's rule (registered on
`ROWS` by op family: `layout.py`, `indexing.py`, `compute.py`) says how its output axes derive from its
inputs'; a node no rule knows gets axes of unknown origin, which is always safe: rows of unknown origin
are never merged. Parameters and buffers are not roots (their axes are unknown): they are weights and
tables, not tokens.

Contractions record which root dims they contract (`RowOrigins.channels`): a linear's last axis, a
conv's channel axis. Those root dims are channels, never grid axes.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import torch
from torch.fx import GraphModule, Node
from torch.fx.experimental.symbolic_shapes import free_symbols

from toma_fx.passes.rows.ids import coordinate_table, raster_run
from toma_fx.passes.rows.types import Axis, Dims, Factor, Segment, axis_size, opaque
from toma_fx.passes.rules.registry import Registry

__all__ = ["ROWS", "Many", "RowOrigins", "is_state", "row_origins"]

ROWS = Registry("rows")
log = logging.getLogger("toma_fx")


@dataclass(frozen=True)
class Many:
    """The axes of each tensor of a tuple-valued node (split, chunk, unbind, max with dim)."""

    items: tuple[Dims, ...]


@dataclass
class RowOrigins:
    """Axes of every tensor-valued node (`dims`), and the root dims contracted as channels."""

    dims: dict[Node, Dims | Many] = field(default_factory=dict)
    channels: set[tuple[Node, int]] = field(default_factory=set)
    # slice writes so far, per (buffer, axis): the axis before them, and the writes by sample (None: all)
    bases: dict[tuple[Node, int], Axis] = field(default_factory=dict)
    writes: dict[tuple[Node, int], dict] = field(default_factory=dict)

    def of(self, arg) -> Dims | None:
        d = self.dims.get(arg) if isinstance(arg, Node) else None
        return d if isinstance(d, tuple) else None

    def contract(self, axis: Axis) -> None:
        """Mark the root dims of `axis` as channels. A patch split's inner parts (`fine`) are contracted
        with the channels but leave their root dim on the grid."""
        for seg in axis:
            for f in seg.factors or ():
                if not f.fine:
                    self.channels.add((f.root, f.dim))


def row_origins(gm: GraphModule, example_inputs: list = ()) -> RowOrigins:
    """Row origins of `gm`; `example_inputs`, the real tensors of a first call, let position-id inputs
    place their rows (`ids.py`)."""
    env = RowOrigins()
    inputs = dict(zip(gm.graph.find_nodes(op="placeholder"), example_inputs))
    for node in gm.graph.nodes:
        value = node.meta.get("example_value")
        if _symbolic(value):
            continue  # a data-dependent shape: its rows have unknown origin, and so do its users'
        if node.op == "placeholder":
            if isinstance(value, torch.Tensor):
                env.dims[node] = _input(node, value, inputs.get(node))
            continue
        if node.op not in ("call_function", "call_method"):
            continue
        rule = ROWS.lookup(node)
        try:
            out = _checked(rule(node, env), value) if rule is not None else None
        except (TypeError, ValueError, IndexError, KeyError, AttributeError) as e:
            log.debug("toma_fx: rows of %s not followed: %s: %s", node.name, type(e).__name__, e)
            out = None
        if out is None:
            out = _unknown(value, getattr(node.target, "__name__", str(node.target)))
        if out is not None:
            env.dims[node] = out
    return env


def _checked(out, value):
    """A rule's answer if it fits the traced value's shape, else None (unknown): a rule that cannot
    follow an op never makes rows look known."""
    values = value if isinstance(value, (tuple, list)) else (value,)
    answers = out.items if isinstance(out, Many) else (out,)
    if out is None or len(values) != len(answers):
        return None
    for v, dims in zip(values, answers):
        if not isinstance(v, torch.Tensor) or len(dims) != v.dim():
            return None
        if any(axis_size(a) != s for a, s in zip(dims, v.shape)):
            return None
    return out


def _symbolic(value) -> bool:
    values = value if isinstance(value, (tuple, list)) else (value,)
    return any(isinstance(v, torch.Tensor) and free_symbols(v) for v in values)


def _input(node: Node, value: torch.Tensor, real) -> Dims:
    """A graph input's axes: its own dims; a position-id input's token axis also says where its run
    of grid rows lies."""
    if is_state(node):
        return _unknown(value, "weight")
    dims = list(_fresh(node, value))
    table = coordinate_table(real)
    run = raster_run(table[0]) if table is not None else None
    if run is not None:
        (start, grid), axis = run, table[1]
        factors = tuple(Factor(node, j, size, positional=True) for j, size in enumerate(grid))
        N = axis_size(dims[axis])
        run_len = math.prod(grid)
        parts = (
            opaque(start, "positions"),
            (Segment(run_len, factors, "positions"),),
            opaque(N - start - run_len, "positions"),
        )
        dims[axis] = tuple(s for part in parts for s in part if s.size)
    return tuple(dims)


def _fresh(node: Node, value: torch.Tensor) -> Dims:
    return tuple((Segment(int(s), (Factor(node, d, int(s)),), node.name),) for d, s in enumerate(value.shape))


def _unknown(value, label: str):
    if isinstance(value, torch.Tensor):
        return tuple(opaque(int(s), label) for s in value.shape)
    if isinstance(value, (tuple, list)) and value and all(isinstance(v, torch.Tensor) for v in value):
        return Many(tuple(_unknown(v, label) for v in value))
    return None


def is_state(node: Node) -> bool:
    """A parameter or buffer lifted to a graph input."""
    return (
        "_parameters_" in node.name
        or "_buffers_" in node.name
        or isinstance(node.meta.get("example_value"), torch.nn.Parameter)
    )
