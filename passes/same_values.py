"""Which nodes of a graph compute the same value: the same op on the same inputs.

Dynamo traces a helper once per call, so a model that applies RoPE to q and to k builds its cos and
sin tables twice (Flux: `cos = freqs_cos[None, :, None, :].to(device)` for each), and AOTAutograd's CSE
does not fold them. The rewrite gathers per-position tables at the destinations; keyed by the
representative node of each table, it gathers each distinct table once per selection.

A node has its own value, never shared, when it is not a pure call (placeholders, attributes, module
calls, random ops), when its storage is written in place (an `empty_like` buffer filled by slice
assignment is what was written into it, not its op, and so is every view of it), or when it reads such
storage (`x * 2` before and after `x.add_(1)` are two values).
"""

from __future__ import annotations

import operator

import torch
from torch.fx import Graph, Node

__all__ = ["representatives"]

_VIEWS = frozenset({
    "__getitem__", "getitem", "view", "view_as", "reshape", "flatten", "unflatten", "unsqueeze", "squeeze",
    "transpose", "permute", "movedim", "swapaxes", "t", "mT", "expand", "expand_as", "narrow", "select",
    "split", "chunk", "unbind", "as_strided", "diagonal", "view_as_real", "view_as_complex", "real", "imag",
    "contiguous", "to", "type_as", "float", "detach", "alias",
})  # fmt: skip
"""Ops whose result may share its input's storage (`to` and `contiguous` do when nothing changes)."""

_IN_PLACE_OPERATORS = frozenset({
    operator.setitem, operator.iadd, operator.isub, operator.imul, operator.itruediv, operator.ifloordiv,
    operator.imod, operator.ipow, operator.iand, operator.ior, operator.ixor, operator.ilshift,
    operator.irshift, operator.imatmul,
})  # fmt: skip

_RANDOM = ("rand", "dropout", "normal", "bernoulli", "multinomial", "uniform", "exponential")


def representatives(graph: Graph) -> dict[Node, Node]:
    """Node -> the first node of `graph` that computes the same value (itself when none does)."""
    written = _written(graph)
    first: dict[tuple, Node] = {}
    rep: dict[Node, Node] = {}
    for n in graph.nodes:
        rep[n] = n
        if n.op not in ("call_function", "call_method") or _random(n):
            continue
        if n in written or any(a in written for a in n.all_input_nodes):  # a read before or after a write
            continue
        try:
            key = (n.op, n.target, _frozen(n.args, rep), _frozen(n.kwargs, rep))
            rep[n] = first.setdefault(key, n)
        except TypeError:  # an argument with no stable hash: the node keeps its own value
            pass
    return rep


def _written(graph: Graph) -> set[Node]:
    """Nodes whose storage an in-place op writes, and every node that may alias them through views."""
    written = {n.args[0] for n in graph.nodes if _writes(n) and isinstance(n.args[0], Node)}
    written |= {n for n in graph.nodes if _writes(n)}
    todo = list(written)
    while todo:
        n = todo.pop()
        aliases = [a for a in n.all_input_nodes if _is_view(n)] + [u for u in n.users if _is_view(u)]
        for a in aliases:
            if a not in written:
                written.add(a)
                todo.append(a)
    return written


def _writes(n: Node) -> bool:
    if n.op == "call_function":
        if n.target in _IN_PLACE_OPERATORS:
            return True
        schema = getattr(n.target, "_schema", None)
        if schema is not None and schema.is_mutable:
            return True
        return getattr(n.target, "__name__", "").endswith("_") and not _name(n).startswith("_")
    return n.op == "call_method" and n.target.endswith("_") and not n.target.startswith("_")


def _is_view(n: Node) -> bool:
    return n.op in ("call_function", "call_method") and _name(n) in _VIEWS


def _random(n: Node) -> bool:
    name = _name(n).lower()
    return any(r in name for r in _RANDOM)


def _name(n: Node) -> str:
    return n.target if isinstance(n.target, str) else getattr(n.target, "__name__", "")


def _frozen(value, rep: dict[Node, Node]):
    """A hashable stand-in for an argument: nodes by their representative, scalars with their type (so
    `x + 1` and `x + 1.0` differ); raises TypeError for what has no stable hash."""
    if isinstance(value, Node):
        return rep[value]
    if isinstance(value, (tuple, list)):
        return (type(value).__name__, *(_frozen(v, rep) for v in value))
    if isinstance(value, dict):
        return ("dict", *((k, _frozen(v, rep)) for k, v in sorted(value.items())))
    if isinstance(value, slice):
        return ("slice", _frozen(value.start, rep), _frozen(value.stop, rep), _frozen(value.step, rep))
    if value is None or isinstance(value, (bool, int, float, str, torch.dtype, torch.device)):
        return (type(value).__name__, value)
    if value is Ellipsis:
        return ("ellipsis",)
    raise TypeError(f"no stable hash for {type(value).__name__}")
