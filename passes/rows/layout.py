"""Row origins through views, reshapes and axis moves.

A reshape regroups factors: merging axes concatenates their factors (outer to inner), splitting an axis
hands its factors out in order, cutting a factor in two where a size falls inside it (the outer part
keeps its place on the grid, the inner part is `fine`: a position inside a patch). Anything that does
not regroup cleanly (splitting a concatenation, merging text with image rows) has unknown origin.
"""

from __future__ import annotations

import math

import torch
from torch.fx import Node

from toma_fx.passes.rows.analysis import ROWS, RowOrigins
from toma_fx.passes.rows.types import Axis, Dims, Factor, Segment, axis_size, opaque, unit
from toma_fx.passes.rules.layout import perm_of
from toma_fx.passes.rules.tokens import example

__all__ = ["reshaped"]


def reshaped(dims: Dims, out_shape) -> Dims | None:
    """`dims` after a reshape to `out_shape` (same number of elements), or None if they do not fit."""
    src, out = [axis_size(a) for a in dims], [int(s) for s in out_shape]
    if math.prod(src) != math.prod(out) or 0 in src:
        return None
    result: list[Axis] = []
    i = j = 0
    while i < len(src) or j < len(out):
        if i < len(src) and src[i] == 1 and (j == len(out) or out[j] != 1):
            i += 1  # a unit axis disappears
            continue
        if j < len(out) and out[j] == 1 and (i == len(src) or src[i] != 1):
            result.append(unit())
            j += 1
            continue
        gi, gj, pi, pj = [i], [j], src[i], out[j]
        i, j = i + 1, j + 1
        while pi != pj:
            if pi < pj:
                gi.append(i)
                pi *= src[i]
                i += 1
            else:
                gj.append(j)
                pj *= out[j]
                j += 1
        result.extend(_regroup([dims[k] for k in gi], [out[k] for k in gj]))
    return tuple(result)


def _regroup(axes: list[Axis], sizes: list[int]) -> list[Axis]:
    big = [a for a in axes if axis_size(a) > 1]
    if len(big) == 1 and sum(s > 1 for s in sizes) == 1:
        return [big[0] if s > 1 else unit() for s in sizes]
    if any(len(a) != 1 or a[0].factors is None for a in big):
        return [opaque(s, "reshape") if s > 1 else unit() for s in sizes]
    label = big[0][0].label if big else ""
    factors = [f for a in big for f in a[0].factors]
    out = []
    for size in sizes:
        if size == 1:
            out.append(unit())
            continue
        take, p = [], 1
        while p < size:
            if not factors:
                return [opaque(s, "reshape") if s > 1 else unit() for s in sizes]
            f = factors.pop(0)
            if size % (p * f.size) == 0:
                take.append(f)
                p *= f.size
                continue
            need = size // p
            if size % p or f.size % need:
                return [opaque(s, "reshape") if s > 1 else unit() for s in sizes]
            take.append(Factor(f.root, f.dim, need, f.start, f.fine, f.positional))
            factors.insert(0, Factor(f.root, f.dim, f.size // need, 0, True, f.positional))
            p = size
        out.append((Segment(size, tuple(take), label),))
    return out


@ROWS.register(
    torch.reshape, torch.flatten, torch.unflatten, torch.squeeze, torch.unsqueeze,
    "view", "reshape", "flatten", "unflatten", "squeeze", "unsqueeze", "contiguous",
)  # fmt: skip
def reshape(node: Node, env: RowOrigins) -> Dims | None:
    dims, out = env.of(node.args[0]), example(node)
    return None if dims is None or out is None else reshaped(dims, out.shape)


@ROWS.register(
    torch.transpose, torch.permute, torch.movedim, torch.swapaxes,
    "transpose", "permute", "movedim", "moveaxis", "swapaxes", "swapdims", "t",
)  # fmt: skip
def permute(node: Node, env: RowOrigins) -> Dims | None:
    dims = env.of(node.args[0])
    return None if dims is None else tuple(dims[p] for p in perm_of(node, len(dims)))


@ROWS.register("expand", "expand_as")
def expand(node: Node, env: RowOrigins) -> Dims | None:
    """A size-1 axis broadcast to n becomes n positions of its own: how RoPE tables are laid out from
    per-axis frequencies (`f.view(F, 1, 1, d).expand(F, H, W, d)`)."""
    dims, out = env.of(node.args[0]), example(node)
    if dims is None or out is None:
        return None
    dims = (*(unit(),) * (out.dim() - len(dims)), *dims)
    return tuple(
        a
        if axis_size(a) == s
        else (Segment(int(s), (Factor(node, d, int(s), positional=True),), "positions"),)
        for d, (a, s) in enumerate(zip(dims, out.shape))
    )


@ROWS.register("repeat", "tile", torch.tile, "repeat_interleave", torch.repeat_interleave)
def repeat(node: Node, env: RowOrigins) -> Dims | None:
    """Axes that grow by repetition have unknown origin; the others keep theirs."""
    dims, out = env.of(node.args[0]), example(node)
    if dims is None or out is None:
        return None
    dims = (*(unit(),) * (out.dim() - len(dims)), *dims)
    return tuple(a if axis_size(a) == s else opaque(int(s), "repeat") for a, s in zip(dims, out.shape))


@ROWS.register(torch.view_as_complex)
def view_as_complex(node: Node, env: RowOrigins) -> Dims | None:
    dims = env.of(node.args[0])
    return None if dims is None else dims[:-1]


@ROWS.register(torch.view_as_real)
def view_as_real(node: Node, env: RowOrigins) -> Dims | None:
    dims = env.of(node.args[0])
    return None if dims is None else (*dims, opaque(2, "real, imag"))
