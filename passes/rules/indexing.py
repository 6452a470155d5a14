"""Indexing, slicing, splitting, joining and buffer writes.

Along other axes these keep the merged tokens (`x[..., :half]`, `x.chunk(2, dim=-1)`,
`out[..., 0::2] = a`). Along the token axis only cuts that keep the image rows whole, or take text
rows only, are followed, with their bounds moved to the merged count; anything else stops the region.
"""

from __future__ import annotations

import operator
from dataclasses import replace

import torch
from torch.fx import Node

from toma_fx.passes.rules.flow import FLOW
from toma_fx.passes.rules.tokens import Context, Flow, Stop, Tokens, example

__all__ = ["slice_tokens"]


def slice_tokens(s: slice, tok: Tokens, n: int, m: int):
    """A slice along the token axis in merged terms: `(slice, before, after)`; before None for text only,
    or None when the slice cuts through the image rows."""
    if s.step not in (None, 1):
        return None
    start, stop, _ = s.indices(tok.total(n))
    img0, img1, shift = tok.before, tok.before + n, m - n
    if stop <= img0:  # text before the image
        return slice(start, stop), None, None
    if start >= img1:  # text after the image
        return slice(start + shift, stop + shift), None, None
    if start <= img0 and stop >= img1:
        return slice(start, stop + shift), img0 - start, stop - img1
    return None


def _expanded(index: tuple, ndim: int) -> tuple | None:
    """`index` with its Ellipsis spelled out as slices, or None for boolean masks."""
    consumed = 0
    for i in index:
        if i is None or i is Ellipsis:
            continue
        ex = example(i) if isinstance(i, Node) else None
        if ex is not None and ex.dtype == torch.bool:
            return None
        consumed += 1
    if Ellipsis not in index:
        return index + (slice(None),) * (ndim - consumed)
    k = index.index(Ellipsis)
    return index[:k] + (slice(None),) * (ndim - consumed) + index[k + 1 :]


def indexed(tok: Tokens, index, ctx: Context) -> tuple[Tokens | None, tuple] | Stop:
    """Where the merged tokens of `x` are in `x[index]` (None: text rows only), and the index in
    merged terms."""
    index = _expanded(index if isinstance(index, tuple) else (index,), tok.ndim)
    if index is None:
        return Stop("boolean mask indexing")
    roles = {tok.axis: "axis", tok.batch: "batch"} | ({tok.keys: "keys"} if tok.keys is not None else {})
    found: dict[str, int] = {}
    new, dim, out, advanced = [], 0, 0, 0
    before, after = tok.before, tok.after
    for i in index:
        if i is None:
            new.append(i)
            out += 1
            continue
        role = roles.get(dim)
        if isinstance(i, (Node, list)):
            ex = example(i) if isinstance(i, Node) else None
            advanced += 1
            if role is not None:
                return Stop("advanced indexing along the token or batch axis")
            if advanced > 1 or (ex is not None and ex.dim() > 1):
                return Stop("advanced indexing with several or multi-dimensional indices")
            out += 0 if ex is not None and ex.dim() == 0 else 1
        elif isinstance(i, int):
            if role is not None:
                return Stop("an int index on the token or batch axis")
        elif isinstance(i, slice):
            if role == "axis" and i != slice(None):
                cut = slice_tokens(i, tok, ctx.n, ctx.m)
                if cut is None:
                    return Stop("a slice cutting through the merged tokens")
                i, before, after = cut
            elif role is not None and i != slice(None):
                return Stop("slicing the batch or key axis")
            if role is not None:
                found[role] = out
            out += 1
        else:
            return Stop(f"index {type(i).__name__}")
        new.append(i)
        dim += 1
    if before is None:
        return None, tuple(new)
    return Tokens(found["axis"], before, after, out, found["batch"], found.get("keys")), tuple(new)


@FLOW.register(operator.getitem)
def getitem(node: Node, ctx: Context) -> Flow | Stop:
    src, index = node.args
    tok = ctx.merged.get(src)
    if isinstance(tok, tuple):  # an element of a chunk / split / unbind
        return Flow(tok[index])
    if any(a in ctx.merged for a in node.all_input_nodes[1:]):
        return Stop("merged tokens used as an index")
    res = indexed(tok, index, ctx)
    if isinstance(res, Stop):
        return res
    out, new = res
    return Flow(out, args=(src, new))


@FLOW.register(torch.narrow, "narrow")
def narrow(node: Node, ctx: Context) -> Flow | Stop:
    tok = ctx.tokens(node.args[0])
    dim, start, length = node.args[1:4]
    dim %= tok.ndim
    if dim == tok.axis:
        cut = slice_tokens(slice(start, start + length), tok, ctx.n, ctx.m)
        if cut is None:
            return Stop("narrow cutting through the merged tokens")
        s, before, after = cut
        args = (node.args[0], dim, s.start, s.stop - s.start)
        return Flow(None if before is None else replace(tok, before=before, after=after), args=args)
    if dim in tok.ours:
        return Stop("narrow of the batch or key axis")
    return Flow(tok)


@FLOW.register(torch.select, "select")
def select(node: Node, ctx: Context) -> Flow | Stop:
    tok = ctx.tokens(node.args[0])
    dim = node.args[1] % tok.ndim
    if dim in tok.ours:
        return Stop("select on the token or batch axis")
    return Flow(tok.without_dim(dim))


@FLOW.register(torch.split, torch.chunk, torch.unbind, "split", "split_with_sizes", "chunk", "unbind")
def split(node: Node, ctx: Context) -> Flow | Stop:
    tok = ctx.tokens(node.args[0])
    if tok is None:
        return Stop("split of merged tokens as a non-input argument")
    name = node.target if isinstance(node.target, str) else node.target.__name__
    args = node.args[1:]
    if name == "unbind":
        dim = args[0] if args else node.kwargs.get("dim", 0)
    else:
        dim = args[1] if len(args) > 1 else node.kwargs.get("dim", 0)
    dim %= tok.ndim
    pieces = node.meta.get("example_value") or ()
    if dim in tok.ours and dim != tok.axis or (dim == tok.axis and name in ("unbind", "chunk")):
        return Stop(f"{name} along the token or batch axis")
    if name == "unbind":
        return Flow((tok.without_dim(dim),) * len(pieces))
    if dim != tok.axis:
        return Flow((tok,) * len(pieces))
    sizes = args[0]
    if not isinstance(sizes, (list, tuple)):
        return Stop(f"{name} of the token axis into equal parts")
    out, start, new = [], 0, list(sizes)
    for k, size in enumerate(sizes):
        cut = slice_tokens(slice(start, start + size), tok, ctx.n, ctx.m)
        if cut is None:
            return Stop(f"{name} cutting through the merged tokens")
        s, before, after = cut
        new[k] = s.stop - s.start
        out.append(None if before is None else replace(tok, before=before, after=after))
        start += size
    return Flow(tuple(out), args=(node.args[0], type(sizes)(new), *node.args[2:]))


@FLOW.register(torch.cat, torch.concat, torch.concatenate)
def cat(node: Node, ctx: Context) -> Flow | Stop:
    tensors = node.args[0]
    dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", node.kwargs.get("axis", 0))
    toks = [ctx.merged.get(t) for t in tensors]
    ref = next(t for t in toks if t is not None)
    if any(isinstance(t, tuple) for t in toks):
        return Stop("concatenation of a tuple")
    dim %= ref.ndim
    if dim == ref.axis:
        if sum(t is not None for t in toks) != 1:
            return Stop("two merged token sets joined")
        k = toks.index(ref)
        sizes = [example(t).shape[dim] for t in tensors]
        return Flow(replace(ref, before=ref.before + sum(sizes[:k]), after=ref.after + sum(sizes[k + 1 :])))
    if dim in ref.ours:
        return Stop("concatenation along the batch or key axis")
    if all(t == ref for t in toks):
        return Flow(ref)
    return Stop("concatenation of merged and unmerged tokens")


@FLOW.register(torch.stack)
def stack(node: Node, ctx: Context) -> Flow | Stop:
    tensors = node.args[0]
    dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
    ref = ctx.tokens(tensors[0])
    if ref is None or any(ctx.merged.get(t) != ref for t in tensors):
        return Stop("stack of merged and unmerged tensors")
    return Flow(ref.with_dims([dim % (ref.ndim + 1)]))


@FLOW.register(operator.setitem)
def setitem(node: Node, ctx: Context) -> Flow | Stop:
    """`buf[index] = value` into a merged buffer: merged values at the same positions, or unmerged
    values that broadcast over the tokens or fill text rows only."""
    buf, index, value = node.args
    tok = ctx.tokens(buf)
    if tok is None or any(a in ctx.merged for a in node.all_input_nodes[1:-1]):
        return Stop("merged values written into an unmerged buffer")
    res = indexed(tok, index, ctx)
    if isinstance(res, Stop):
        return res
    target, new = res
    vtok = ctx.merged.get(value) if isinstance(value, Node) else None
    ex = example(value) if isinstance(value, Node) else None
    if vtok is not None:
        if target is None or isinstance(vtok, tuple) or vtok.shifted(target.ndim - vtok.ndim) != target:
            return Stop("merged tokens written into other positions")
    elif target is not None and ex is not None:
        k = target.axis - (target.ndim - ex.dim())
        if k >= 0 and ex.shape[k] != 1:
            return Stop("unmerged tokens written into a merged buffer")
    return Flow(None, args=(buf, new if isinstance(index, tuple) else new[0], value))
