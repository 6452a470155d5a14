"""Row origins through slicing, splitting, joining, padding and slice writes.

Cutting an axis keeps the segments it covers; a cut inside a segment keeps its origin when it falls on
whole steps of the outer factor (dropping a first frame `[H*W:]`, a band of rows), else the rows lose it.
Joining concatenates segments. `buf[:, a:b] = x` writes x's segments over `[a, b)` of the buffer's axis
(the joint caption + image sequences some models build by padding and indexing); writes per sample
(`buf[i, a:b] = ...`) count only when every sample gets the same layout.
"""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch.fx import Node

from toma_fx.passes.rows.analysis import ROWS, Many, RowOrigins
from toma_fx.passes.rows.types import Axis, Dims, axis_size, coalesced, cut, opaque, unit
from toma_fx.passes.rules.tokens import example

__all__ = []


def _spelled_out(index, ndim: int) -> tuple:
    """`index` as a tuple with its Ellipsis (or the missing trailing dims) spelled out as slices."""
    index = index if isinstance(index, tuple) else (index,)
    consumed = sum(i is not None and i is not Ellipsis for i in index)
    if Ellipsis in index:
        k = index.index(Ellipsis)
        return index[:k] + (slice(None),) * (ndim - consumed) + index[k + 1 :]
    return index + (slice(None),) * (ndim - consumed)


def _index(dims: Dims, index) -> Dims | None:
    index = _spelled_out(index, len(dims))
    out, d = [], 0
    for i in index:
        if i is None:
            out.append(unit())
            continue
        if isinstance(i, int):
            d += 1
            continue
        if isinstance(i, slice):
            start, stop, step = i.indices(axis_size(dims[d]))
            out.append(
                dims[d]
                if (start, stop, step) == (0, axis_size(dims[d]), 1)
                else cut(dims[d], start, stop, step)
            )
            d += 1
            continue
        return None  # advanced indexing: unknown
    return tuple(out)


@ROWS.register(operator.getitem)
def getitem(node: Node, env: RowOrigins):
    src, index = node.args
    whole = env.dims.get(src)
    if isinstance(whole, Many):
        return whole.items[index]
    return _index(whole, index) if whole is not None else None


@ROWS.register(torch.narrow, "narrow")
def narrow(node: Node, env: RowOrigins) -> Dims | None:
    dims = env.of(node.args[0])
    if dims is None:
        return None
    dim, start, length = node.args[1:4]
    dim %= len(dims)
    return (*dims[:dim], cut(dims[dim], start, start + length), *dims[dim + 1 :])


@ROWS.register(torch.select, "select")
def select(node: Node, env: RowOrigins) -> Dims | None:
    dims = env.of(node.args[0])
    if dims is None:
        return None
    dim = node.args[1] % len(dims)
    return (*dims[:dim], *dims[dim + 1 :])


@ROWS.register(
    torch.split,
    torch.chunk,
    torch.unbind,
    torch.tensor_split,
    "split",
    "split_with_sizes",
    "chunk",
    "unbind",
    "tensor_split",
)
def split(node: Node, env: RowOrigins) -> Many | None:
    dims, pieces = env.of(node.args[0]), node.meta.get("example_value")
    if dims is None or not isinstance(pieces, (tuple, list)):
        return None
    name = node.target if isinstance(node.target, str) else node.target.__name__
    args = node.args[1:]
    if name == "unbind":
        dim = (args[0] if args else node.kwargs.get("dim", 0)) % len(dims)
        return Many(tuple((*dims[:dim], *dims[dim + 1 :]) for _ in pieces))
    dim = (args[1] if len(args) > 1 else node.kwargs.get("dim", 0)) % len(dims)
    items, start = [], 0
    for p in pieces:
        size = int(p.shape[dim])
        items.append((*dims[:dim], cut(dims[dim], start, start + size), *dims[dim + 1 :]))
        start += size
    return Many(tuple(items))


@ROWS.register(torch.cat, torch.concat, torch.concatenate)
def cat(node: Node, env: RowOrigins) -> Dims | None:
    parts = [env.of(t) for t in node.args[0]]
    if any(p is None for p in parts) or not parts:
        return None
    dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", node.kwargs.get("axis", 0))
    dim %= len(parts[0])
    joined = coalesced(tuple(s for p in parts for s in p[dim] if s.size))
    others = [_first_known([p[d] for p in parts]) for d in range(len(parts[0]))]
    return (*others[:dim], joined, *others[dim + 1 :])


def _first_known(axes: list[Axis]) -> Axis:
    return next((a for a in axes if all(s.factors is not None for s in a)), axes[0])


@ROWS.register(torch.stack)
def stack(node: Node, env: RowOrigins) -> Dims | None:
    parts = [env.of(t) for t in node.args[0]]
    if any(p is None for p in parts) or not parts:
        return None
    dim = (node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)) % (len(parts[0]) + 1)
    base = tuple(_first_known([p[d] for p in parts]) for d in range(len(parts[0])))
    return (*base[:dim], opaque(len(parts), "stack"), *base[dim:])


@ROWS.register(F.pad)
def pad(node: Node, env: RowOrigins) -> Dims | None:
    dims = env.of(node.args[0])
    pads = node.args[1] if len(node.args) > 1 else node.kwargs.get("pad")
    if dims is None or not isinstance(pads, (tuple, list)):
        return None
    dims = list(dims)
    for k in range(len(pads) // 2):
        d = len(dims) - 1 - k
        lo, hi = pads[2 * k], pads[2 * k + 1]
        if lo < 0 or hi < 0:
            return None
        if lo or hi:
            dims[d] = (*opaque(lo, "padding"), *dims[d], *opaque(hi, "padding"))
            dims[d] = tuple(s for s in dims[d] if s.size)
    return tuple(dims)


@ROWS.register(operator.setitem)
def setitem(node: Node, env: RowOrigins) -> None:
    """Write the value's segments into the buffer's axes, in place (the node itself has no value)."""
    buf, index, value = node.args
    dims = env.of(buf)
    if dims is None:
        return None
    env.dims[buf] = _written(buf, dims, index, env.of(value), env)
    return None


def _written(buf: Node, dims: Dims, index, value: Dims | None, env: RowOrigins) -> Dims:
    index = _spelled_out(index, len(dims))
    if None in index or len(index) != len(dims) or any(not isinstance(i, (int, slice)) for i in index):
        return _unknown_writes(dims, index)
    cuts = [d for d, i in enumerate(index) if isinstance(i, slice) and i != slice(None)]
    ints = [d for d, i in enumerate(index) if isinstance(i, int)]
    if len(cuts) != 1 or ints not in ([], [0]) or value is None:
        return _unknown_writes(dims, index)
    d = cuts[0]
    start, stop, step = index[d].indices(axis_size(dims[d]))
    kept = [k for k in range(len(dims)) if k not in ints]
    p = kept.index(d) - (len(kept) - len(value))  # the value broadcasts from the right
    if step != 1 or p < 0 or axis_size(value[p]) != stop - start:
        return _unknown_writes(dims, index)
    key, sample = (buf, d), (index[0] if ints else None)
    writes = env.writes.setdefault(key, {})
    writes.setdefault(sample, []).append((start, stop, value[p]))
    base = env.bases.setdefault(key, dims[d])
    layouts = {_apply(base, w) for w in writes.values()}
    every_sample = sample is None or set(writes) >= set(range(example(buf).shape[0]))
    if len(layouts) != 1 or (None in writes and len(writes) > 1) or not every_sample:
        return (*dims[:d], opaque(axis_size(base), "per-sample writes"), *dims[d + 1 :])
    return (*dims[:d], layouts.pop(), *dims[d + 1 :])


def _apply(base: Axis, writes: list) -> Axis:
    axis = base
    for start, stop, seg in writes:
        total = axis_size(axis)
        axis = coalesced(tuple(s for s in (*cut(axis, 0, start), *seg, *cut(axis, stop, total)) if s.size))
    return axis


def _unknown_writes(dims: Dims, index: tuple) -> Dims:
    """Writes the analysis does not follow: every axis they cut loses its origin (a write of
    other channels, `x[..., 1::3] = y`, leaves the rows as they are)."""
    if None in index or len(index) != len(dims):
        return tuple(opaque(axis_size(a), "written") for a in dims)
    return tuple(a if i == slice(None) else opaque(axis_size(a), "written") for a, i in zip(dims, index))
