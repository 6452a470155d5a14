"""Tensors made from merged tokens' shape rather than their values, and reads of their metadata.

`torch.empty_like(x)` (a RoPE output buffer filled by slice writes) has x's merged shape and so merged
tokens; `x.new_zeros(sizes)` does when a size counts x's tokens, which is patched. Reading a dtype or
device is harmless; reading the shape of the token axis stops the region.
"""

from __future__ import annotations

import torch
from torch.fx import Node

from toma_fx.passes.rules.flow import FLOW
from toma_fx.passes.rules.layout import sizes_of
from toma_fx.passes.rules.tokens import Context, Flow, Stop, Tokens, example

__all__ = []

_LIKE = (
    torch.empty_like,
    torch.zeros_like,
    torch.ones_like,
    torch.full_like,
    torch.rand_like,
    torch.randn_like,
)


@FLOW.register(*_LIKE)
def like(node: Node, ctx: Context) -> Flow | Stop:
    tok = ctx.tokens(node.args[0])
    return Flow(tok) if tok is not None else Stop("merged tokens as a fill value")


@FLOW.register("new_empty", "new_zeros", "new_ones", "new_full")
def new_sized(node: Node, ctx: Context) -> Flow | Stop:
    tok = ctx.tokens(node.args[0])
    if node.target == "new_full":
        sizes, packed = list(node.args[1]), True
    else:
        sizes, packed = sizes_of(node.args[1:])
    out = example(node)
    at = [i for i, s in enumerate(sizes) if s == tok.total(ctx.n)]
    if (
        out is None
        or len(at) != 1
        or tok.batch >= len(sizes)
        or sizes[tok.batch] != example(node.args[0]).shape[tok.batch]
    ):
        return Stop("a new tensor whose token axis cannot be told")
    sizes[at[0]] = tok.total(ctx.m)
    new = (tuple(sizes),) if packed else tuple(sizes)
    rest = node.args[2:] if node.target == "new_full" else ()
    return Flow(Tokens(at[0], tok.before, tok.after, len(sizes), tok.batch), args=(node.args[0], *new, *rest))


@FLOW.register("dim", "is_floating_point", "is_complex", "element_size", "get_device")
def metadata(node: Node, ctx: Context) -> Flow:
    return Flow(None)


@FLOW.register(getattr)
def attribute(node: Node, ctx: Context) -> Flow | Stop:
    """`x.dtype`, `x.device` are harmless; `x.real` / `x.imag` keep the tokens; `x.mT` swaps the last two."""
    tok, name = ctx.tokens(node.args[0]), node.args[1]
    if name in ("dtype", "device", "ndim", "is_cuda", "layout"):
        return Flow(None)
    if name in ("real", "imag"):
        return Flow(tok)
    if name in ("mT", "mH"):
        perm = list(range(tok.ndim))
        perm[-2], perm[-1] = perm[-1], perm[-2]
        return Flow(tok.permuted(perm))
    return Stop(f"reads .{name} of merged tokens")


@FLOW.register("size", torch.Tensor.size)
def size(node: Node, ctx: Context) -> Flow | Stop:
    tok = ctx.tokens(node.args[0])
    dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
    if isinstance(dim, int) and dim % tok.ndim not in tok.ours:
        return Flow(None)
    return Stop("reads the token count")
