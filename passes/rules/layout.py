"""Layout ops: views, reshapes and axis moves that keep the token axis whole.

They run on merged tokens as they are; only a size argument that counted the unmerged tokens
(`x.view(2, 4096, 24, 128)`) is patched to the merged count. Folding the token or batch axis into
another (or splitting it) stops the region.
"""

from __future__ import annotations

import math

import torch
from torch.fx import Node

from toma_fx.passes.rules.flow import FLOW
from toma_fx.passes.rules.tokens import Context, Flow, Stop, Tokens, example

__all__ = ["kept_axis", "perm_of", "sizes_of"]


def sizes_of(args: tuple) -> tuple[list, bool]:
    """`(sizes, packed)` of `view(*sizes)` / `view(sizes)` style arguments."""
    packed = len(args) == 1 and isinstance(args[0], (tuple, list, torch.Size))
    return list(args[0] if packed else args), packed


def kept_axis(src: torch.Size, out: torch.Size, axis: int) -> int | None:
    """Where axis `axis` of `src` is in `out` after a reshape that keeps it whole, or None."""
    prefix = math.prod(src[:axis])
    p = 1
    for j, size in enumerate(out):
        if p == prefix and size == src[axis] and math.prod(out[j + 1 :]) == math.prod(src[axis + 1 :]):
            return j
        p *= size
        if p > prefix:
            return None
    return None


def _first(node: Node, ctx: Context, what: str) -> Tokens | Stop:
    tok = ctx.tokens(node.args[0]) if node.args else None
    others = [a for a in node.all_input_nodes[1:] if a in ctx.merged]
    if tok is None or others:
        return Stop(f"merged tokens in a {what} argument other than the input")
    return tok


@FLOW.register(torch.reshape, "view", "reshape")
def reshape(node: Node, ctx: Context) -> Flow | Stop:
    tok = _first(node, ctx, "reshape")
    if isinstance(tok, Stop):
        return tok
    src, out = example(node.args[0]).shape, example(node).shape
    axes = [kept_axis(src, out, a) for a in (tok.axis, tok.batch, tok.keys) if a is not None]
    if None in axes:
        return Stop("reshape folding or splitting the token or batch axis")
    sizes, packed = sizes_of(node.args[1:])
    if len(sizes) != len(out) or not all(isinstance(s, int) for s in sizes):
        return Stop("reshape with symbolic sizes")
    if sizes[axes[0]] == tok.total(ctx.n):
        sizes[axes[0]] = tok.total(ctx.m)
    elif sizes[axes[0]] != -1:
        return Stop("reshape size not matching the token count")
    if tok.keys is not None and sizes[axes[2]] == tok.total(ctx.n):
        sizes[axes[2]] = tok.total(ctx.m)
    new = (tuple(sizes),) if packed else tuple(sizes)
    keys = axes[2] if tok.keys is not None else None
    return Flow(Tokens(axes[0], tok.before, tok.after, len(out), axes[1], keys), args=(node.args[0], *new))


def perm_of(node: Node, nd: int) -> list[int]:
    """The permutation a transpose / permute / movedim / .t() applies to a rank-`nd` tensor."""
    name = node.target if node.op == "call_method" else node.target.__name__
    args = node.args[1:]
    if name in ("transpose", "swapaxes", "swapdims"):
        a, b = (x % nd for x in args[:2])
        perm = list(range(nd))
        perm[a], perm[b] = b, a
        return perm
    if name == "permute":
        dims = args[0] if len(args) == 1 and isinstance(args[0], (tuple, list)) else args
        return [d % nd for d in dims]
    if name in ("movedim", "moveaxis"):
        src, dst = args[0] % nd, args[1] % nd
        perm = [d for d in range(nd) if d != src]
        perm.insert(dst, src)
        return perm
    return list(range(nd))[::-1]  # .t(), .T


@FLOW.register(
    torch.transpose, torch.permute, torch.movedim, torch.swapaxes,
    "transpose", "permute", "movedim", "moveaxis", "swapaxes", "swapdims", "t",
)  # fmt: skip
def permute(node: Node, ctx: Context) -> Flow | Stop:
    tok = _first(node, ctx, "permute")
    return tok if isinstance(tok, Stop) else Flow(tok.permuted(perm_of(node, tok.ndim)))


@FLOW.register(torch.flatten, "flatten")
def flatten(node: Node, ctx: Context) -> Flow | Stop:
    tok = _first(node, ctx, "flatten")
    if isinstance(tok, Stop):
        return tok
    nd, args = tok.ndim, node.args[1:]
    start = (args[0] if args else node.kwargs.get("start_dim", 0)) % nd
    end = (args[1] if len(args) > 1 else node.kwargs.get("end_dim", -1)) % nd
    if start == end:
        return Flow(tok)
    if any(start <= a <= end for a in tok.ours):
        return Stop("flatten over the token or batch axis")
    for d in range(end, start, -1):
        tok = tok.without_dim(d)
    return Flow(tok)


@FLOW.register(torch.unflatten, "unflatten")
def unflatten(node: Node, ctx: Context) -> Flow | Stop:
    tok = _first(node, ctx, "unflatten")
    if isinstance(tok, Stop):
        return tok
    dim = node.args[1] % tok.ndim
    sizes = node.args[2] if len(node.args) > 2 else node.kwargs["sizes"]
    if dim in tok.ours:
        return Stop("unflatten of the token or batch axis")
    return Flow(tok.with_dims(list(range(dim + 1, dim + len(sizes)))))


@FLOW.register(torch.unsqueeze, "unsqueeze")
def unsqueeze(node: Node, ctx: Context) -> Flow | Stop:
    tok = _first(node, ctx, "unsqueeze")
    if isinstance(tok, Stop):
        return tok
    dim = node.args[1] if len(node.args) > 1 else node.kwargs["dim"]
    return Flow(tok.with_dims([dim % (tok.ndim + 1)]))


@FLOW.register(torch.squeeze, "squeeze")
def squeeze(node: Node, ctx: Context) -> Flow | Stop:
    tok = _first(node, ctx, "squeeze")
    if isinstance(tok, Stop):
        return tok
    shape = example(node.args[0]).shape
    dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
    if dims is None:
        dims = [d for d, s in enumerate(shape) if s == 1]
    dims = [d % tok.ndim for d in (dims if isinstance(dims, (tuple, list)) else [dims])]
    dims = [d for d in dims if shape[d] == 1]
    if any(d in tok.ours for d in dims):
        return Stop("squeeze of the token or batch axis")
    for d in sorted(dims, reverse=True):
        tok = tok.without_dim(d)
    return Flow(tok)


@FLOW.register("expand")
def expand(node: Node, ctx: Context) -> Flow | Stop:
    tok = _first(node, ctx, "expand")
    if isinstance(tok, Stop):
        return tok
    sizes, packed = sizes_of(node.args[1:])
    tok = tok.shifted(len(sizes) - tok.ndim)
    for a in (tok.axis, tok.keys):
        if a is not None and sizes[a] == tok.total(ctx.n):
            sizes[a] = tok.total(ctx.m)
    new = (tuple(sizes),) if packed else tuple(sizes)
    return Flow(tok, args=(node.args[0], *new))


@FLOW.register(torch.view_as_complex)
def view_as_complex(node: Node, ctx: Context) -> Flow | Stop:
    tok = _first(node, ctx, "view_as_complex")
    if isinstance(tok, Stop):
        return tok
    if tok.ndim - 1 in tok.ours:
        return Stop("view_as_complex of the token axis")
    return Flow(tok.without_dim(tok.ndim - 1))


@FLOW.register(torch.view_as_real)
def view_as_real(node: Node, ctx: Context) -> Flow | Stop:
    tok = _first(node, ctx, "view_as_real")
    return tok if isinstance(tok, Stop) else Flow(tok.with_dims([tok.ndim]))


@FLOW.register("repeat", "tile", "repeat_interleave", torch.repeat_interleave, torch.tile)
def repeat(node: Node, ctx: Context) -> Flow | Stop:
    """Repeats along other axes; the result's token axis is where an input of that size stays."""
    tok = _first(node, ctx, "repeat")
    if isinstance(tok, Stop):
        return tok
    src, out = example(node.args[0]), example(node)
    if out is None or out.dim() < tok.ndim:
        return Stop("repeat without a tensor result")
    tok = tok.shifted(out.dim() - tok.ndim)
    shape = (1,) * (out.dim() - src.dim()) + tuple(src.shape)
    if any(out.shape[a] != shape[a] for a in tok.ours):
        return Stop("repeat along the token or batch axis")
    return Flow(tok)
