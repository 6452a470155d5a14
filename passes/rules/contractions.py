"""Products that contract channels: `linear`, `matmul` / `@` / `bmm`, `einsum`, and attention.

A contraction over channels keeps every token's row separate, so merged tokens flow through it; one
over the token axis mixes tokens (linear attention's `k^T v`) and stops the region. Hand-written
attention is followed through its two products: `q @ k^T` with merged q and k gives scores with the
merged tokens as rows and the merged keys as columns (`Tokens.keys`); `scores @ v` contracts those keys
with the merged value rows. `scaled_dot_product_attention` needs merged queries; keys and values are
merged (self attention) or not (cross attention, text keys).
"""

from __future__ import annotations

import operator
import re
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch.fx import Node
from torch.fx.operator_schemas import normalize_function

from toma_fx.passes.rules.flow import FLOW
from toma_fx.passes.rules.tokens import Context, Flow, Stop, Tokens, aligned_size, example

__all__ = ["LINEAR", "SDPA"]

SDPA = torch._C._nn.scaled_dot_product_attention
LINEAR = (torch._C._nn.linear, F.linear)


@FLOW.register(*LINEAR)
def linear(node: Node, ctx: Context) -> Flow | Stop:
    tok = ctx.tokens(node.args[0])
    if tok is None or any(a in ctx.merged for a in node.all_input_nodes[1:]):
        return Stop("merged tokens as a linear's weight")
    if tok.ndim - 1 in tok.ours:
        return Stop("a linear over the token axis")
    return Flow(tok)


@FLOW.register(operator.matmul, torch.matmul, torch.bmm, "matmul", "bmm", "__matmul__")
def matmul(node: Node, ctx: Context) -> Flow | Stop:
    a, b = node.args[:2]
    ta, tb = ctx.tokens(a), ctx.tokens(b)
    out = example(node)
    ea, eb = example(a), example(b)
    if out is None or ea is None or eb is None or ea.dim() < 2 or eb.dim() < 2:
        return Stop("a matrix product of vectors")
    nd = out.dim()
    ta = ta.shifted(nd - ta.ndim) if ta else None
    tb = tb.shifted(nd - tb.ndim) if tb else None
    rows, cols, inner = nd - 2, nd - 1, "contracted"
    if ta and tb:
        if (
            ta.axis == rows
            and ta.keys is None
            and tb.axis == cols
            and tb.keys is None
            and ta.batch == tb.batch
        ):
            return Flow(replace(ta, keys=cols))  # q @ k^T: scores over merged keys
        if ta.axis == rows and ta.keys == cols and tb.axis == rows and tb.batch == ta.batch:
            return Flow(replace(ta, keys=None))  # scores @ v: the merged keys are contracted
        if ta == tb and ta.axis < rows and ta.keys is None:
            return Flow(ta)  # tokens in the batch dims of both
        return Stop("a product of merged tokens that mixes them")
    tok, other, side = (ta, b, "a") if ta else (tb, a, "b")
    contracted = cols if side == "a" else rows
    if tok.axis == contracted or tok.keys == contracted:
        return Stop(f"a product over the token axis ({inner})")
    ex = example(other)
    if tok.axis < rows and aligned_size(ex, tok.axis, nd) not in (1,):
        return Stop("a product with unmerged tokens")
    if tok.batch < rows and aligned_size(ex, tok.batch, nd) not in (1, out.shape[tok.batch]):
        return Stop("a product over the batch axis")
    return Flow(tok)


@FLOW.register(torch.einsum)
def einsum(node: Node, ctx: Context) -> Flow | Stop:
    """One merged operand whose token, batch (and key) letters all reach the output."""
    equation, *operands = node.args
    if len(operands) == 1 and isinstance(operands[0], (tuple, list)):
        operands = list(operands[0])
    if not isinstance(equation, str) or "..." in equation or "->" not in equation:
        return Stop("einsum with an implicit or broadcast equation")
    lhs, rhs = re.sub(r"\s", "", equation).split("->")
    terms = lhs.split(",")
    merged = [(t, ctx.tokens(o)) for t, o in zip(terms, operands) if ctx.tokens(o) is not None]
    if len(merged) != 1:
        return Stop("einsum over several merged operands")
    term, tok = merged[0]
    letters = {a: term[a] for a in tok.ours}
    if any(letter not in rhs for letter in letters.values()):
        return Stop("einsum contracting the token or batch axis")
    for t, o in zip(terms, operands):
        if ctx.tokens(o) is None and isinstance(o, Node) and letters[tok.axis] in t:
            ex = example(o)
            if ex is not None and ex.shape[t.index(letters[tok.axis])] != 1:
                return Stop("einsum with unmerged tokens")
    keys = None if tok.keys is None else rhs.index(letters[tok.keys])
    return Flow(
        Tokens(
            rhs.index(letters[tok.axis]), tok.before, tok.after, len(rhs), rhs.index(letters[tok.batch]), keys
        )
    )


@FLOW.register(SDPA, F.scaled_dot_product_attention)
def sdpa(node: Node, ctx: Context) -> Flow | Stop:
    norm = normalize_function(node.target, node.args, node.kwargs, normalize_to_only_use_kwargs=True)
    if norm is None:
        return Stop("attention call with unknown arguments")
    kw = norm.kwargs
    q, k, v = (ctx.tokens(kw[name]) for name in ("query", "key", "value"))
    if q is None or q.axis != q.ndim - 2:
        return Stop("attention with unmerged queries")
    if (k is None) != (v is None) or (k is not None and (k.axis != k.ndim - 2 or k.before != v.before)):
        return Stop("attention keys and values merged differently")
    if kw.get("is_causal"):
        return Stop("causal attention")
    mask_node = kw.get("attn_mask")
    mask = example(mask_node)
    if mask is None:
        return Flow(q)
    nd = q.ndim
    per_query = aligned_size(mask, nd - 2, nd) != 1
    per_key = k is not None and aligned_size(mask, nd - 1, nd) != 1
    tables = []
    for merged, tok, axis in ((per_query, q, nd - 2), (per_key, k, nd - 1)):
        if not merged:
            continue
        rows = replace(tok, axis=axis, ndim=nd)
        if aligned_size(mask, axis, nd) != rows.total(ctx.n) or not ctx.is_table(mask_node):
            return Stop("an attention mask over merged tokens that depends on them")
        tables.append((mask_node, rows))
    return Flow(q, tables=tuple(tables))  # a padding mask: each merged row keeps its destination's
