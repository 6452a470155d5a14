"""Follow merged tokens through a Dynamo graph: which ops may run on them, and where they must stop.

From a merge point, every node that consumes merged tokens is checked against a small table of ops
known to act on each token alike (`linear`, pointwise math, norms over channels, reshapes that keep the
token axis, SDPA with merged queries). Such a node *flows*: its output carries merged tokens too,
maybe with its arguments patched (a `reshape(2, 72, ...)` whose 72 counted the unmerged tokens). Any
other node *stops* the region: the merged input is unmerged just before it, which is always correct.

`Tokens` records where the merged image tokens sit in a tensor, so that text concatenated to them
(Flux, SD3) and head/batch permutes (fused qkv) are followed, never guessed.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch.fx import Node
from torch.fx.operator_schemas import normalize_function

__all__ = ["SDPA", "LINEAR", "Flow", "Stop", "Tokens", "example", "follow"]

SDPA = torch._C._nn.scaled_dot_product_attention
LINEAR = (torch._C._nn.linear, F.linear)

_POINTWISE_FUNCTIONS = {
    torch._C._nn.gelu, F.gelu, F.silu, F.relu, F.mish, F.dropout, torch.relu, torch.tanh, torch.sigmoid,
    torch.exp, torch.clamp, torch.clip, operator.neg, torch.neg, torch.nn.functional.silu,
}  # fmt: skip
_POINTWISE_METHODS = {
    "float", "half", "bfloat16", "to", "type", "type_as", "contiguous", "clone", "clip", "clamp", "neg",
    "tanh", "sigmoid", "exp", "relu", "detach",
}  # fmt: skip
_BINARY = {
    operator.add,
    operator.sub,
    operator.mul,
    operator.truediv,
    torch.add,
    torch.sub,
    torch.mul,
    torch.div,
}
_BINARY_METHODS = {"add", "sub", "mul", "div"}
_CHANNEL_NORMS = {F.layer_norm, torch.layer_norm, torch.rms_norm, F.rms_norm}


@dataclass(frozen=True)
class Tokens:
    """Merged image tokens along `axis`, after `before` and before `after` unmerged (text) tokens.

    `batch` is the batch axis, `ndim` the tensor's rank. The length along `axis` is
    `before + merged + after` in the rewritten graph and `before + N + after` in the original.
    """

    axis: int
    before: int
    after: int
    ndim: int
    batch: int = 0

    def total(self, n: int) -> int:
        return self.before + n + self.after


@dataclass(frozen=True)
class Flow:
    """The node runs on merged tokens. `tokens` is where they are in its output: per element for
    tuple-valued nodes, None where an output holds text only.

    `args`/`kwargs`, when set, replace the node's own (token counts patched). `tables` lists operands
    that are per-position tables to gather at the destinations: `(operand node, Tokens of the output)`.
    """

    tokens: Tokens | tuple[Tokens | None, ...] | None
    args: tuple | None = None
    kwargs: dict | None = None
    tables: tuple[tuple[Node, Tokens], ...] = ()


@dataclass(frozen=True)
class Stop:
    """The node must see unmerged tokens; `why` says what the rules could not follow."""

    why: str


def example(node) -> torch.Tensor | None:
    """The node's example tensor from tracing, if it produced one."""
    v = node.meta.get("example_value") if isinstance(node, Node) else None
    return v if isinstance(v, torch.Tensor) else None


def follow(node: Node, merged: dict[Node, Tokens], n: int, m: int, is_table) -> Flow | Stop:
    """Decide whether `node`, some of whose inputs carry merged tokens, can run merged.

    Args:
        merged: merged nodes of this region and where their tokens are.
        n, m: image tokens before and after merging.
        is_table: `is_table(operand) -> bool`, whether an unmerged operand with one row per token is a
            per-position table (RoPE) rather than the token stream itself.
    """
    if node.op == "call_function":
        t = node.target
        if t in LINEAR:
            return _linear(node, merged)
        if t in _POINTWISE_FUNCTIONS:
            return _pointwise(node, merged)
        if t in _BINARY:
            return _binary(node, merged, n, is_table)
        if t in _CHANNEL_NORMS:
            return _channel_norm(node, merged)
        if t is SDPA:
            return _sdpa(node, merged)
        if t is operator.getitem:
            return _getitem(node, merged, n, m)
        if t is torch.cat:
            return _cat(node, merged, n)
        if t is torch.stack:
            return _stack(node, merged)
        if t is torch.reshape:
            return _reshape(node, merged, n, m)
        if t in (torch.transpose, torch.permute, torch.flatten, torch.unsqueeze, torch.squeeze):
            return _layout_op(node, merged, t.__name__)
        return Stop(f"unknown op {getattr(t, '__name__', t)}")
    if node.op == "call_method":
        name = node.target
        if name in _POINTWISE_METHODS:
            return _pointwise(node, merged)
        if name in _BINARY_METHODS:
            return _binary(node, merged, n, is_table)
        if name in ("view", "reshape"):
            return _reshape(node, merged, n, m)
        if name == "expand":
            return _expand(node, merged, n, m)
        if name in ("transpose", "permute", "flatten", "unflatten", "unsqueeze", "squeeze", "movedim"):
            return _layout_op(node, merged, name)
        if name in ("chunk", "split", "split_with_sizes", "unbind"):
            return _split(node, merged, n, m)
        return Stop(f"unknown method .{name}()")
    return Stop("graph output" if node.op == "output" else f"unsupported node {node.op}")


def _only_first(node: Node, merged) -> Tokens | None:
    """Tokens of arg 0 when it is the only merged input."""
    ins = [a for a in node.all_input_nodes if a in merged]
    if len(ins) == 1 and node.args and node.args[0] is ins[0]:
        return merged[ins[0]]
    return None


def _linear(node, merged) -> Flow | Stop:
    tok = _only_first(node, merged)
    if tok is None or tok.axis == tok.ndim - 1:
        return Stop("linear over the token axis")
    return Flow(tok)


def _pointwise(node, merged) -> Flow | Stop:
    tok = _only_first(node, merged)
    return Flow(tok) if tok is not None else Stop("merged tokens in a non-input argument")


def _channel_norm(node, merged) -> Flow | Stop:
    tok = _only_first(node, merged)
    shape = node.args[1] if len(node.args) > 1 else node.kwargs.get("normalized_shape")
    k = len(shape) if isinstance(shape, (tuple, list)) else 1
    if tok is None or tok.ndim - k <= max(tok.axis, tok.batch):
        return Stop("norm over the token axis")
    return Flow(tok)


def _binary(node, merged, n, is_table) -> Flow | Stop:
    out = example(node)
    operands = list(node.args[:2])
    toks = [merged.get(a) if isinstance(a, Node) else None for a in operands]
    if out is None or not any(toks):
        return Stop("pointwise op without a tensor result")
    ref = next(t for t in toks if t is not None)
    tok = _shifted(ref, out.dim() - ref.ndim)
    tables = []
    for a, t in zip(operands, toks):
        if t is not None:
            if _shifted(t, out.dim() - t.ndim) != tok:
                return Stop("operands with merged tokens in different places")
            continue
        ex = example(a)
        if ex is None:
            continue  # a Python scalar
        size = _aligned_size(ex, tok.axis, out.dim())
        if size == 1:
            continue  # broadcast over tokens: gates, shifts, scales
        if size == tok.total(n) and is_table(a):
            tables.append((a, tok))
            continue
        return Stop("combines with unmerged tokens (residual)")
    return Flow(tok, tables=tuple(tables))


def _sdpa(node, merged) -> Flow | Stop:
    norm = normalize_function(node.target, node.args, node.kwargs, normalize_to_only_use_kwargs=True)
    if norm is None:
        return Stop("attention call with unknown arguments")
    kw = norm.kwargs
    q, k, v = (merged.get(kw[name]) for name in ("query", "key", "value"))
    if q is None or q.axis != q.ndim - 2:
        return Stop("attention with unmerged queries")
    if (k is None) != (v is None) or (k is not None and k.axis != k.ndim - 2):
        return Stop("attention keys and values merged differently")
    if kw.get("is_causal"):
        return Stop("causal attention")
    mask = example(kw.get("attn_mask"))
    if mask is not None and (
        _aligned_size(mask, q.ndim - 2, q.ndim) != 1
        or (k is not None and _aligned_size(mask, q.ndim - 1, q.ndim) != 1)
    ):
        return Stop("attention mask over merged tokens")
    return Flow(q)


def _getitem(node, merged, n, m) -> Flow | Stop:
    src, index = node.args
    tok = merged[src]
    if isinstance(tok, tuple):  # an element of a chunk/split/unbind
        return Flow(tok[index])
    index = index if isinstance(index, tuple) else (index,)
    if any(i is Ellipsis or isinstance(i, (Node, torch.Tensor, list)) for i in index):
        return Stop("advanced indexing")
    before, after, axis, batch, new = tok.before, tok.after, None, None, []
    dim = out = 0
    for i in index:
        if i is not None and dim in (tok.axis, tok.batch):
            if i != slice(None):
                if dim == tok.batch or not isinstance(i, slice):
                    return Stop("indexing the token or batch axis")
                patched = _slice_tokens(i, tok, n, m)
                if patched is None:
                    return Stop("slice cutting through the merged tokens")
                i, before, after = patched
            axis, batch = (out, batch) if dim == tok.axis else (axis, out)
        new.append(i)
        if i is not None:
            dim += 1
        out += not isinstance(i, int)
    axis = out + tok.axis - dim if axis is None else axis
    batch = out + tok.batch - dim if batch is None else batch
    args = (src, tuple(new))
    if before is None:  # the slice kept only text
        return Flow(None, args=args)
    return Flow(Tokens(axis, before, after, tok.ndim + out - dim, batch), args=args)


def _slice_tokens(s: slice, tok: Tokens, n: int, m: int):
    """A slice along the token axis in merged terms: `(slice, before, after)`, before None for text only."""
    if s.step not in (None, 1):
        return None
    total = tok.total(n)
    start, stop, _ = s.indices(total)
    img0, img1 = tok.before, tok.before + n
    shift = m - n
    if stop <= img0:  # text before the image
        return slice(start, stop), None, None
    if start >= img1:  # text after the image
        return slice(start + shift, stop + shift), None, None
    if start <= img0 and stop >= img1:
        return slice(start, stop + shift), img0 - start, stop - img1
    return None


def _cat(node, merged, n) -> Flow | Stop:
    tensors = node.args[0]
    dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
    toks = [merged.get(t) for t in tensors]
    ref = next(t for t in toks if t is not None)
    dim = dim % ref.ndim
    if dim == ref.batch:
        return Stop("concatenation along the batch axis")
    if dim != ref.axis:
        if all(t == ref for t in toks):
            return Flow(ref)
        return Stop("concatenation of merged and unmerged tokens")
    if sum(t is not None for t in toks) != 1:
        return Stop("two merged token sets joined")
    k = toks.index(ref)
    sizes = [example(t).shape[dim] for t in tensors]
    return Flow(replace(ref, before=ref.before + sum(sizes[:k]), after=ref.after + sum(sizes[k + 1 :])))


def _stack(node, merged) -> Flow | Stop:
    tensors = node.args[0]
    dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
    ref = merged.get(tensors[0])
    if ref is None or any(merged.get(t) != ref for t in tensors):
        return Stop("stack of merged and unmerged tensors")
    dim = dim % (ref.ndim + 1)
    return Flow(_insert_dims(ref, [dim]))


def _reshape(node, merged, n, m) -> Flow | Stop:
    tok = _only_first(node, merged)
    src, out = example(node.args[0]), example(node)
    if tok is None or src is None or out is None:
        return Stop("reshape of merged tokens as a non-input argument")
    axis = _kept_axis(src.shape, out.shape, tok.axis)
    batch = _kept_axis(src.shape, out.shape, tok.batch)
    if axis is None or batch is None:
        return Stop("reshape folding the token or batch axis")
    sizes = node.args[1:]
    packed = len(sizes) == 1 and isinstance(sizes[0], (tuple, list, torch.Size))
    sizes = list(sizes[0] if packed else sizes)
    if len(sizes) != out.dim() or not all(isinstance(s, int) for s in sizes):
        return Stop("reshape with symbolic sizes")
    if sizes[axis] == tok.total(n):
        sizes[axis] = tok.total(m)
    elif sizes[axis] != -1:
        return Stop("reshape size not matching the token count")
    new = (tuple(sizes),) if packed else tuple(sizes)
    return Flow(Tokens(axis, tok.before, tok.after, out.dim(), batch), args=(node.args[0], *new))


def _expand(node, merged, n, m) -> Flow | Stop:
    tok = _only_first(node, merged)
    out = example(node)
    if tok is None or out is None:
        return Stop("expand of merged tokens as a non-input argument")
    sizes = node.args[1:]
    packed = len(sizes) == 1 and isinstance(sizes[0], (tuple, list, torch.Size))
    sizes = list(sizes[0] if packed else sizes)
    tok = _shifted(tok, out.dim() - tok.ndim)
    if sizes[tok.axis] == tok.total(n):
        sizes[tok.axis] = tok.total(m)
    new = (tuple(sizes),) if packed else tuple(sizes)
    return Flow(tok, args=(node.args[0], *new))


def _kept_axis(src: torch.Size, out: torch.Size, axis: int) -> int | None:
    """Where axis `axis` of `src` is in `out` after a reshape that keeps it whole, or None."""
    prefix = math.prod(src[:axis])
    p = 1
    for j, size in enumerate(out):
        if p == prefix and size == src[axis]:
            return j
        p *= size
        if p > prefix:
            return None
    return None


def _layout_op(node, merged, name) -> Flow | Stop:
    tok = _only_first(node, merged)
    out = example(node)
    if tok is None or out is None:
        return Stop(f"{name} of merged tokens as a non-input argument")
    args = node.args[1:]
    nd = tok.ndim
    if name == "transpose":
        d0, d1 = (a % nd for a in (args[0], args[1]))
        perm = list(range(nd))
        perm[d0], perm[d1] = d1, d0
        return Flow(_permuted(tok, perm))
    if name == "permute":
        perm = list(args[0]) if len(args) == 1 and isinstance(args[0], (tuple, list)) else list(args)
        return Flow(_permuted(tok, [p % nd for p in perm]))
    if name == "movedim":
        src, dst = args[0] % nd, args[1] % nd
        perm = [d for d in range(nd) if d != src]
        perm.insert(dst, src)
        return Flow(_permuted(tok, perm))
    if name in ("flatten", "unflatten"):
        if name == "flatten":
            start = (args[0] if args else node.kwargs.get("start_dim", 0)) % nd
            end = (args[1] if len(args) > 1 else node.kwargs.get("end_dim", -1)) % nd
            dropped = end - start
        else:
            start = end = args[0] % nd
            dropped = 1 - len(args[1])
        if start <= tok.axis <= end or start <= tok.batch <= end:
            if start != end or name == "unflatten":
                return Stop(f"{name} over the token or batch axis")
        return Flow(_moved_after(tok, end, -dropped, out.dim()))
    if name == "unsqueeze":
        return Flow(_insert_dims(tok, [args[0] % (nd + 1)]))
    if name == "squeeze":
        if not args:
            return Stop("squeeze without a dim")
        d = args[0] % nd
        if d in (tok.axis, tok.batch):
            return Stop("squeeze of the token or batch axis")
        return Flow(_moved_after(tok, d, -1, nd - 1))
    return Stop(f"unknown layout op {name}")


def _split(node, merged, n, m) -> Flow | Stop:
    tok = _only_first(node, merged)
    if tok is None:
        return Stop("split of merged tokens as a non-input argument")
    name, args = node.target, node.args[1:]
    if name == "unbind":
        dim = args[0] if args else node.kwargs.get("dim", 0)
    else:
        dim = args[1] if len(args) > 1 else node.kwargs.get("dim", 0)
    dim %= tok.ndim
    if dim == tok.batch:
        return Stop(f"{name} along the batch axis")
    if name == "unbind":
        if dim == tok.axis:
            return Stop("unbind along the token axis")
        count = example(node.args[0]).shape[dim]
        return Flow((_moved_after(tok, dim, -1, tok.ndim - 1),) * count)
    if dim != tok.axis:
        count = len(node.meta.get("example_value") or ()) or (args[0] if name == "chunk" else 1)
        return Flow((tok,) * count)
    sizes = args[0]
    if not isinstance(sizes, (list, tuple)):
        return Stop(f"{name} of the token axis into equal parts")
    pieces, start, new = [], 0, list(sizes)
    for k, size in enumerate(sizes):
        patched = _slice_tokens(slice(start, start + size), tok, n, m)
        if patched is None:
            return Stop(f"{name} cutting through the merged tokens")
        s, before, after = patched
        new[k] = s.stop - s.start
        pieces.append(None if before is None else replace(tok, before=before, after=after))
        start += size
    return Flow(tuple(pieces), args=(node.args[0], type(sizes)(new), *node.args[2:]))


def _shifted(tok: Tokens, k: int) -> Tokens:
    """The same tokens seen in a tensor with `k` more leading (broadcast) dims."""
    return Tokens(tok.axis + k, tok.before, tok.after, tok.ndim + k, tok.batch + k) if k else tok


def _permuted(tok: Tokens, perm: list[int]) -> Tokens:
    return replace(tok, axis=perm.index(tok.axis), batch=perm.index(tok.batch))


def _insert_dims(tok: Tokens, dims: list[int]) -> Tokens:
    axis, batch = tok.axis, tok.batch
    for d in sorted(dims):
        axis += d <= axis
        batch += d <= batch
    return Tokens(axis, tok.before, tok.after, tok.ndim + len(dims), batch)


def _moved_after(tok: Tokens, dim: int, shift: int, ndim: int) -> Tokens:
    """Axes after `dim` move by `shift` (dims removed or added at `dim`)."""
    return Tokens(
        tok.axis + shift * (tok.axis > dim),
        tok.before,
        tok.after,
        ndim,
        tok.batch + shift * (tok.batch > dim),
    )


def _aligned_size(t: torch.Tensor, axis: int, ndim: int) -> int:
    """Size of `t` at `axis` of an `ndim`-dim broadcast result (1 where `t` has no such dim)."""
    k = axis - (ndim - t.dim())
    return int(t.shape[k]) if k >= 0 else 1
