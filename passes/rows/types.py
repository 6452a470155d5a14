"""What the row-origin analysis says of a tensor: for every axis, where its positions come from.

An axis is a run of `Segment`s along it (a concatenation: caption rows, then image rows, ...). A segment
whose origin is known is a product of `Factor`s, outer to inner: the image rows of `x.flatten(2)` of a
`(B, C, H, W)` map are `[H, W]`, position `i = h * W + w`. A factor is one axis of a graph input (the
*root*) at some resolution: a stride-2 conv or a patch split keeps the root axis and shrinks its size.

    Dims    = tuple[Axis, ...]                one per tensor dim
    Axis    = tuple[Segment, ...]             sizes add up to the dim's size
    Segment = (size, factors or None, label)  None: rows of no traceable origin

Factors rooted at a graph input are an origin; factors rooted at an `arange`, `meshgrid` or broadcast
inside the graph are positions the model lays out itself (RoPE tables built from shapes). When token
rows meet such a table elementwise, the segment keeps its origin and learns the table's `positions`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from torch.fx import Node

__all__ = ["Axis", "Dims", "Factor", "Segment", "axis_size", "coalesced", "cut", "opaque", "unit"]


@dataclass(frozen=True)
class Factor:
    """Positions along dim `dim` of `root`, at `size` steps (after strides and patch splits), from
    `start`. `fine` marks the inner part of a split (a position inside a patch), which is never a grid
    axis. `positional` marks a position axis the graph lays out itself (`root` is then the `arange`,
    `meshgrid` or broadcast that made it, or a position-id input and `dim` its coordinate column)."""

    root: Node
    dim: int
    size: int
    start: int = 0
    fine: bool = False
    positional: bool = False


@dataclass(frozen=True)
class Segment:
    size: int
    factors: tuple[Factor, ...] | None
    label: str = ""
    positions: tuple[Factor, ...] | None = None

    def __post_init__(self) -> None:
        for fs in (self.factors, self.positions):
            if fs is not None and math.prod(f.size for f in fs) != self.size:
                raise ValueError(f"segment of {self.size} rows with factors {fs}")

    @property
    def positional(self) -> bool:
        """Whether the rows are positions laid out inside the graph, not rows of an input."""
        return bool(self.factors) and all(f.positional for f in self.factors)


Axis = tuple[Segment, ...]
Dims = tuple[Axis, ...]


def opaque(size: int, label: str) -> Axis:
    """An axis of `size` positions of unknown origin."""
    return (Segment(size, None, label),)


def unit() -> Axis:
    return (Segment(1, (), "unit"),)


def axis_size(axis: Axis) -> int:
    return sum(s.size for s in axis)


def coalesced(axis: Axis) -> Axis:
    """`axis` with neighbouring segments joined where they are consecutive cuts of one factor (frame 0
    and frames 1.. written back separately, say)."""
    out: list[Segment] = []
    for seg in axis:
        prev = out[-1] if out else None
        if prev is not None and _continues(prev, seg):
            f, g = prev.factors[0], seg.factors[0]
            joined = Factor(f.root, f.dim, f.size + g.size, f.start, f.fine, f.positional)
            out[-1] = Segment(prev.size + seg.size, (joined, *prev.factors[1:]), prev.label)
        else:
            out.append(seg)
    return tuple(out)


def _continues(a: Segment, b: Segment) -> bool:
    if not a.factors or not b.factors or a.positions or b.positions or a.factors[1:] != b.factors[1:]:
        return False
    f, g = a.factors[0], b.factors[0]
    same = (f.root, f.dim, f.fine, f.positional) == (g.root, g.dim, g.fine, g.positional)
    return same and g.start == f.start + f.size


def cut(axis: Axis, start: int, stop: int, step: int = 1) -> Axis:
    """Positions `[start, stop)` of `axis`."""
    if stop <= start:
        return opaque(0, "empty")
    if step != 1:
        return opaque(len(range(start, stop, step)), "strided slice")
    out, offset = [], 0
    for seg in axis:
        lo, hi = max(start, offset), min(stop, offset + seg.size)
        if lo < hi:
            out.append(
                seg if (lo, hi) == (offset, offset + seg.size) else _inside(seg, lo - offset, hi - offset)
            )
        offset += seg.size
    return tuple(out)


def _inside(seg: Segment, lo: int, hi: int) -> Segment:
    """Rows `[lo, hi)` of one segment."""
    if not seg.factors:
        return Segment(hi - lo, None, seg.label)
    outer, inner = seg.factors[0], seg.size // seg.factors[0].size
    if lo % inner or hi % inner:
        return Segment(hi - lo, None, seg.label)
    first = replace(outer, size=(hi - lo) // inner, start=outer.start + lo // inner)
    return Segment(hi - lo, (first, *seg.factors[1:]), seg.label)
