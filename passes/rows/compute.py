"""Row origins through math: elementwise ops, contractions, convolutions, norms and reductions.

Elementwise results take, axis by axis, the origin of the operand with the most rows of known origin
there, and the positions of a RoPE table that meets them (the table says where the rows are). Linear
maps and matmuls keep their rows and make new columns; a linear map marks the axis it contracts as
channels (a matmul may contract tokens: attention's `p @ v`). Convolutions keep batch and spatial
axes (a stride coarsens a factor) and make new channels: how a `(B, C, H, W)` latent keeps its grid
through a UNet or a patch embedding.
"""

from __future__ import annotations

import operator
import re
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch.fx import Node
from torch.fx.operator_schemas import normalize_function

from toma_fx.passes.rows.analysis import ROWS, Many, RowOrigins
from toma_fx.passes.rows.types import Axis, Dims, Factor, Segment, axis_size, cut, opaque, unit
from toma_fx.passes.rules.contractions import LINEAR, SDPA
from toma_fx.passes.rules.tokens import example

__all__ = ["broadcast"]


def _known(axis: Axis) -> bool:
    return all(s.factors is not None for s in axis)


def broadcast(out_shape, operands: list[Dims]) -> Dims:
    """Axes of an elementwise result of `out_shape` from its operands' axes (right-aligned)."""
    nd = len(out_shape)
    out = []
    for d in range(nd):
        size = int(out_shape[d])
        candidates = []
        for dims in operands:
            k = d - (nd - len(dims))
            if k >= 0 and axis_size(dims[k]) == size:
                candidates.append(dims[k])
        if size == 1:
            out.append(unit())
        elif not candidates:
            out.append(opaque(size, "broadcast"))
        else:
            axis = max(candidates, key=_origin_rows)  # the first, among those of most rows of known origin
            out.append(_with_positions(axis, candidates))
    return tuple(out)


def _origin_rows(axis: Axis) -> int:
    """Rows of `axis` whose origin is an input (not positions laid out in the graph)."""
    return sum(s.size for s in axis if s.factors is not None and not s.positional)


def _grid_positions(seg: Segment) -> bool:
    """Whether a segment lays out positions over two or more axes (a broadcast along one axis, a gate
    or timestep per token, is no position)."""
    factors = seg.factors if seg.positional else seg.positions
    return bool(factors) and sum(f.size > 1 for f in factors) >= 2


def _with_positions(axis: Axis, candidates: list[Axis]) -> Axis:
    """`axis` with the positions of a candidate that lays positions out along it (a RoPE table of
    position ids), cut where the candidate's segments are cut."""
    for other in candidates:
        if other is axis or not any(_grid_positions(o) for o in other):
            continue
        out, offset = [], 0
        for o in other:
            for s in cut(axis, offset, offset + o.size):
                fresh = _grid_positions(o) and not s.positions
                out.append(replace(s, positions=o.factors if o.positional else o.positions) if fresh else s)
            offset += o.size
        return tuple(out)
    return axis


@ROWS.register_pointwise
@ROWS.register(
    operator.add, operator.sub, operator.mul, operator.truediv, operator.neg, operator.pow, F.dropout,
    F.silu, torch.polar, torch.complex, "float", "half", "bfloat16", "double", "clone", "detach", "type",
)  # fmt: skip
def elementwise(node: Node, env: RowOrigins) -> Dims | None:
    out = example(node)
    operands = [env.of(a) for a in (*node.args, *node.kwargs.values()) if isinstance(a, Node)]
    operands = [o for o in operands if o is not None]
    return None if out is None or not operands else broadcast(out.shape, operands)


@ROWS.register("to", "type_as", F.layer_norm, torch.layer_norm, F.rms_norm, torch.rms_norm, F.group_norm,
               F.normalize, torch.softmax, torch.log_softmax, F.softmax, F.log_softmax, "softmax",
               "log_softmax", torch.empty_like, torch.zeros_like, torch.ones_like, torch.full_like,
               torch.rand_like, torch.randn_like, torch.cumsum, "cumsum")  # fmt: skip
def same_axes(node: Node, env: RowOrigins) -> Dims | None:
    """Ops whose result has the input's positions (a norm, a softmax, a buffer `empty_like(x)`)."""
    return env.of(node.args[0])


@ROWS.register(*LINEAR)
def linear(node: Node, env: RowOrigins) -> Dims | None:
    dims, out = env.of(node.args[0]), example(node)
    if dims is None or out is None:
        return None
    env.contract(dims[-1])
    return (*dims[:-1], opaque(int(out.shape[-1]), "features"))


@ROWS.register(operator.matmul, torch.matmul, torch.bmm, "matmul", "bmm")
def matmul(node: Node, env: RowOrigins) -> Dims | None:
    a, b = (env.of(x) for x in node.args[:2])
    out = example(node)
    if a is None or b is None or out is None or len(a) < 2 or len(b) < 2:
        return None  # not marked as channels: attention's `p @ v` contracts the tokens themselves
    batch = broadcast(out.shape[:-2], [a[:-2], b[:-2]])
    return (*batch, a[-2], b[-1])


@ROWS.register(torch.einsum)
def einsum(node: Node, env: RowOrigins) -> Dims | None:
    equation, *operands = node.args
    if len(operands) == 1 and isinstance(operands[0], (tuple, list)):
        operands = list(operands[0])
    if not isinstance(equation, str) or "..." in equation or "->" not in equation:
        return None
    lhs, rhs = re.sub(r"\s", "", equation).split("->")
    letters: dict[str, Axis] = {}
    for term, op in zip(lhs.split(","), operands):
        dims = env.of(op)
        if dims is None or len(dims) != len(term):
            return None
        for letter, axis in zip(term, dims):
            if letter not in letters or (not _known(letters[letter]) and _known(axis)):
                letters[letter] = axis
    return tuple(letters[c] for c in rhs)


@ROWS.register(SDPA, F.scaled_dot_product_attention)
def sdpa(node: Node, env: RowOrigins) -> Dims | None:
    norm = normalize_function(node.target, node.args, node.kwargs, normalize_to_only_use_kwargs=True)
    if norm is None:
        return None
    q, v = env.of(norm.kwargs["query"]), env.of(norm.kwargs["value"])
    return None if q is None or v is None else (*q[:-1], v[-1])


@ROWS.register(torch.conv1d, torch.conv2d, torch.conv3d, F.conv1d, F.conv2d, F.conv3d,
               F.interpolate, F.pixel_unshuffle, F.pixel_shuffle, F.avg_pool2d, F.max_pool2d)  # fmt: skip
def spatial(node: Node, env: RowOrigins) -> Dims | None:
    """`(B, C, *spatial)` in, `(B, C', *spatial')` out: each spatial axis keeps its root dim at its new
    size; a conv contracts the input channels."""
    dims, out = env.of(node.args[0]), example(node)
    if dims is None or out is None or out.dim() != len(dims):
        return None
    if node.target in (torch.conv1d, torch.conv2d, torch.conv3d):
        env.contract(dims[1])
    result = [dims[0], opaque(int(out.shape[1]), "channels")]
    for axis, size in zip(dims[2:], out.shape[2:]):
        result.append(_resized(axis, int(size)))
    return tuple(result)


def _resized(axis: Axis, size: int) -> Axis:
    if axis_size(axis) == size:
        return axis
    if len(axis) == 1 and axis[0].factors is not None and len(axis[0].factors) == 1:
        f = axis[0].factors[0]
        return (Segment(size, (Factor(f.root, f.dim, size, 0, f.fine, f.positional),), axis[0].label),)
    return opaque(size, "resized")


_REDUCTIONS = (
    torch.sum, torch.mean, torch.amax, torch.amin, torch.prod, torch.std, torch.var, torch.logsumexp,
    "sum", "mean", "amax", "amin", "prod", "std", "var", "logsumexp",
)  # fmt: skip


@ROWS.register(*_REDUCTIONS)
def reduction(node: Node, env: RowOrigins) -> Dims | None:
    dims, out = env.of(node.args[0]), example(node)
    if dims is None or out is None:
        return None
    dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
    if dim is None:
        return ()
    reduced = {d % len(dims) for d in (dim if isinstance(dim, (tuple, list)) else [dim])}
    if out.dim() == len(dims):
        return tuple(unit() if d in reduced else a for d, a in enumerate(dims))
    return tuple(a for d, a in enumerate(dims) if d not in reduced)


@ROWS.register(torch.arange)
def arange(node: Node, env: RowOrigins) -> Dims | None:
    """`arange(n)`: n positions of their own (position ids built in the model)."""
    out = example(node)
    if out is None or out.dim() != 1:
        return None
    n = int(out.shape[0])
    return ((Segment(n, (Factor(node, 0, n, positional=True),), "positions"),),)


@ROWS.register(torch.meshgrid)
def meshgrid(node: Node, env: RowOrigins) -> Many | None:
    """`meshgrid(a, b, c, indexing="ij")`: every output has the inputs' axes, in order."""
    axes = [
        env.of(a)
        for a in (
            node.args[0] if len(node.args) == 1 and isinstance(node.args[0], (tuple, list)) else node.args
        )
    ]
    values = node.meta.get("example_value")
    if any(a is None or len(a) != 1 for a in axes) or node.kwargs.get("indexing", "ij") != "ij":
        return None
    dims = tuple(a[0] for a in axes)
    return Many(tuple(dims for _ in values))


@ROWS.register(
    "new_zeros", "new_empty", "new_ones", "new_full", torch.zeros, torch.empty, torch.ones, torch.full
)
def created(node: Node, env: RowOrigins) -> Dims | None:
    """A fresh buffer: its positions are filled by later writes (`setitem`)."""
    out = example(node)
    return None if out is None else tuple(opaque(int(s), "new buffer") for s in out.shape)
