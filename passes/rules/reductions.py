"""Reductions and normalisations over other axes: `x.pow(2).mean(-1, keepdim=True)`, `rsqrt`, layer
and RMS norms, softmax over channels (or over the merged keys of hand-written attention).

Each token is reduced on its own, so merged tokens flow; a reduction over the token or batch axis mixes
tokens and stops the region.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.fx import Node

from toma_fx.passes.rules.flow import FLOW
from toma_fx.passes.rules.tokens import Context, Flow, Stop, Tokens

__all__ = []

_REDUCTIONS = (
    torch.sum, torch.mean, torch.amax, torch.amin, torch.prod, torch.std, torch.var, torch.logsumexp,
    torch.norm, torch.linalg.vector_norm, torch.argmax, torch.argmin, torch.max, torch.min, torch.all,
    torch.any, torch.count_nonzero,
    "sum", "mean", "amax", "amin", "prod", "std", "var", "logsumexp", "norm", "argmax", "argmin", "max",
    "min", "all", "any", "count_nonzero",
)  # fmt: skip


_ORDER_FIRST = (torch.norm, "norm", torch.linalg.vector_norm)  # (input, p, dim, keepdim)


def _dims(node: Node, nd: int) -> list[int] | None:
    """The reduced axes, or None when they are not constants."""
    k = 2 if node.target in _ORDER_FIRST else 1
    dim = node.args[k] if len(node.args) > k else node.kwargs.get("dim", node.kwargs.get("axis"))
    if dim is None:
        return list(range(nd))
    if not isinstance(dim, (int, tuple, list)) or isinstance(dim, bool):
        return None
    return [d % nd for d in (dim if isinstance(dim, (tuple, list)) else [dim])]


def _keepdim(node: Node) -> bool:
    if "keepdim" in node.kwargs:
        return bool(node.kwargs["keepdim"])
    rest = [a for a in node.args[2:] if isinstance(a, bool)]
    return bool(rest and rest[-1])


@FLOW.register(*_REDUCTIONS)
def reduction(node: Node, ctx: Context) -> Flow | Stop:
    tok = ctx.tokens(node.args[0])
    if tok is None or any(a in ctx.merged for a in node.all_input_nodes[1:]):
        return Stop("merged tokens in a reduction argument other than the input")
    dims = _dims(node, tok.ndim)
    if dims is None or any(d in tok.ours for d in dims):
        return Stop("a reduction over the token or batch axis")
    out = tok
    if not _keepdim(node):
        for d in sorted(dims, reverse=True):
            out = out.without_dim(d)
    if isinstance(node.meta.get("example_value"), tuple):  # max(dim) / min(dim): (values, indices)
        return Flow((out, out))
    return Flow(out)


@FLOW.register(
    torch.softmax,
    torch.log_softmax,
    F.softmax,
    F.log_softmax,
    "softmax",
    "log_softmax",
    torch.cumsum,
    "cumsum",
)
def softmax(node: Node, ctx: Context) -> Flow | Stop:
    """Softmax over one axis: not the tokens; over the merged keys, it is attention's own."""
    tok = ctx.tokens(node.args[0])
    if tok is None:
        return Stop("merged tokens in a softmax argument other than the input")
    dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
    if not isinstance(dim, int):
        return Stop("softmax over an implicit axis")
    dim %= tok.ndim
    if dim in (tok.axis, tok.batch) or (dim == tok.keys and node.target in (torch.cumsum, "cumsum")):
        return Stop("a softmax over the token or batch axis")
    return Flow(tok)


@FLOW.register(F.layer_norm, torch.layer_norm, F.rms_norm, torch.rms_norm, F.group_norm, F.normalize)
def norm(node: Node, ctx: Context) -> Flow | Stop:
    """Norms over trailing channel dims (`normalized_shape`), or `F.normalize` over one axis."""
    tok = ctx.tokens(node.args[0])
    if tok is None or any(a in ctx.merged for a in node.all_input_nodes[1:]):
        return Stop("merged tokens as a norm's weight or bias")
    if node.target is F.normalize:
        dim = node.args[2] if len(node.args) > 2 else node.kwargs.get("dim", 1)
        normed = [dim % tok.ndim]
    elif node.target is F.group_norm:
        normed = list(range(1, tok.ndim))  # channels (dim 1) and everything after
    else:
        shape = node.args[1] if len(node.args) > 1 else node.kwargs.get("normalized_shape")
        k = len(shape) if isinstance(shape, (tuple, list, torch.Size)) else 1
        normed = list(range(tok.ndim - k, tok.ndim))
    if any(d in tok.ours for d in normed):
        return Stop("a norm over the token or batch axis")
    return Flow(Tokens(tok.axis, tok.before, tok.after, tok.ndim, tok.batch, tok.keys))
