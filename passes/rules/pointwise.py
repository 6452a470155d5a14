"""Pointwise ops: the same math on every element, in any spelling (function, method, operator,
in-place), with broadcasting.

An output element depends on the elements of the operands at the same (broadcast) position, so the
op runs on merged tokens when every operand either carries the same merged tokens, broadcasts over the
token axis (gates, shifts, scales, biases), or is a per-position table with one row per token that does
not depend on the tokens (RoPE cos/sin): such a table is gathered at the destinations instead.
Anything else combines merged with unmerged tokens (a residual) and stops the region.
"""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch.fx import Node

from toma_fx.passes.rules.flow import FLOW
from toma_fx.passes.rules.tokens import Context, Flow, Stop, aligned_size, example

__all__ = ["pointwise"]

_OPERATORS = (operator.add, operator.sub, operator.mul, operator.truediv, operator.neg, operator.pow)
_FUNCTIONS = (F.dropout, F.silu, torch.polar, torch.complex, F.hardswish, torch.nn.functional.gelu)
_METHODS = ("float", "half", "bfloat16", "double", "contiguous", "clone", "detach", "type")


@FLOW.register_pointwise
@FLOW.register(*_OPERATORS, *_FUNCTIONS, *_METHODS)
def pointwise(node: Node, ctx: Context) -> Flow | Stop:
    out = example(node)
    if out is None:
        return Stop("pointwise op without a tensor result")
    operands = [a for a in (*node.args, *node.kwargs.values()) if isinstance(a, Node)]
    return broadcast(out.dim(), operands, ctx)


@FLOW.register("to", "type_as", "view_as")
def converted(node: Node, ctx: Context) -> Flow | Stop:
    """`x.to(y)`, `x.type_as(y)`: `y` gives only a dtype or device."""
    tok = ctx.tokens(node.args[0])
    if tok is None:
        return Stop("merged tokens give only a dtype or a shape")
    if node.target == "view_as" and tuple(example(node).shape) != tuple(example(node.args[0]).shape):
        return Stop("view_as to another shape")
    return Flow(tok)


def broadcast(ndim: int, operands: list[Node], ctx: Context) -> Flow | Stop:
    """The verdict for an elementwise combination of `operands` into a rank-`ndim` result."""
    toks = [ctx.merged.get(a) for a in operands]
    if any(isinstance(t, tuple) for t in toks):
        return Stop("a tuple of tensors as an operand")
    merged = [t.shifted(ndim - t.ndim) for t in toks if t is not None]
    if not merged:
        return Stop("no merged operand")
    ref = merged[0]
    if any(t != ref for t in merged):
        return Stop("operands with merged tokens in different places")
    tables = []
    for a, t in zip(operands, toks):
        ex = example(a)
        if t is not None or ex is None:
            continue
        if ref.keys is not None and aligned_size(ex, ref.keys, ndim) != 1:
            return Stop("a mask or bias over the merged keys")
        size = aligned_size(ex, ref.axis, ndim)
        if size == 1:
            continue  # broadcast over tokens: gates, shifts, scales
        if size == ref.total(ctx.n) and ctx.is_table(a):
            tables.append((a, ref.shifted(0)))
            continue
        return Stop("combines merged with unmerged tokens (a residual)")
    return Flow(ref, tables=tuple(tables))
