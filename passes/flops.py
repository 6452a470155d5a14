"""FLOPs of each node of a Dynamo graph, from the shapes its nodes hold (no run, no data).

Only products count, as `torch.utils.flop_counter` counts them (2 FLOPs a multiply-add): linear maps,
matrix products, einsums, convolutions, attention, and ToMA's own nodes. Elementwise work is left out:
it is memory-bound and small beside these. A node with a data-dependent shape counts 0.

    select    the similarity matrix of every tile: 2 N S C   (the greedy steps only compare)
    weights   destination-token similarities: 2 N K C
    merge     the cluster means: 2 N K C                      unmerge: 2 N K C'
    SDPA form merge_sdpa: scores and sum, 4 N K C            unmerge_sdpa: 2 N K (C + C')
"""

from __future__ import annotations

import math
import operator

import torch
import torch.nn.functional as F
from torch.fx import GraphModule, Node
from torch.fx.experimental.symbolic_shapes import free_symbols
from torch.fx.operator_schemas import normalize_function

from toma_fx.ops import nodes
from toma_fx.passes.rules import LINEAR, SDPA, example

__all__ = ["node_flops"]


def node_flops(gm: GraphModule) -> dict[str, int]:
    """`{node name: FLOPs}` for every node that does a product."""
    out = {}
    for node in gm.graph.nodes:
        if node.op not in ("call_function", "call_method"):
            continue
        rule = _FORMULAS.get(node.target)
        if rule is None:
            continue
        try:
            flops = rule(node)
        except (TypeError, ValueError, IndexError, AttributeError):
            flops = 0
        out[node.name] = flops if isinstance(flops, int) else 0
    return out


def _shape(arg) -> tuple[int, ...] | None:
    ex = example(arg)
    if ex is None or free_symbols(ex):
        return None
    return tuple(int(s) for s in ex.shape)


def _linear(node: Node) -> int:
    x, w = _shape(node.args[0]), _shape(node.args[1])
    return 2 * math.prod(x[:-1]) * w[0] * w[1]


def _matmul(node: Node) -> int:
    a, out = _shape(node.args[0]), _shape(node)
    return 2 * math.prod(out) * a[-1]


def _sdpa(node: Node) -> int:
    kw = normalize_function(node.target, node.args, node.kwargs, normalize_to_only_use_kwargs=True).kwargs
    q, k, v = (_shape(kw[n]) for n in ("query", "key", "value"))
    return 2 * math.prod(q[:-1]) * k[-2] * (q[-1] + v[-1])


def _conv(node: Node) -> int:
    w, out = _shape(node.args[1]), _shape(node)
    return 2 * math.prod(out) * math.prod(w[1:])


def _einsum(node: Node) -> int:
    equation, *operands = node.args
    if len(operands) == 1 and isinstance(operands[0], (tuple, list)):
        operands = list(operands[0])
    sizes = {}
    for term, op in zip(equation.replace(" ", "").split("->")[0].split(","), operands):
        sizes.update(zip(term, _shape(op)))
    return 2 * math.prod(sizes.values())


def _pairs(layout) -> int:
    """Destination-token pairs of a layout: `sum(T_i * K_i * S_i)`."""
    return sum(b.num_tiles * b.keep * b.tile_size for b in nodes.tile_layout(layout).blocks)


def _batch_channels(tokens: Node, rows) -> tuple[int, int]:
    """Samples and channels of a `(B, L, C)` (or sequence-first) token tensor, its rows at `rows`."""
    shape = _shape(tokens)
    return shape[rows[3]], shape[-1]


def _select(node: Node) -> int:
    B, C = _batch_channels(node.args[0], node.args[2])
    layout = nodes.tile_layout(node.args[1])
    return 2 * B * sum(b.num_tiles * b.tile_size**2 for b in layout.blocks) * C


def _weights(node: Node) -> int:
    B, C = _batch_channels(node.args[0], node.args[3])
    return 2 * B * _pairs(node.args[2]) * C


def _merge(node: Node) -> int:
    B, C = _batch_channels(node.args[0], node.args[3])
    return 2 * B * _pairs(node.args[2]) * C


def _unmerge(node: Node) -> int:
    out = _shape(node)
    per_row = math.prod(out) // out[node.args[3][0]]  # batch x everything but the tokens
    return 2 * per_row * _pairs(node.args[2])


def _merge_sdpa(node: Node) -> int:
    """Scores of destinations against tokens, then their weighted sum: two merge matmuls."""
    return 2 * _merge(node)


def _unmerge_sdpa(node: Node) -> int:
    """Scores of tokens against destinations on the metric, then the unmerge matmul."""
    out = _shape(node)
    B, C = _batch_channels(node.args[1], node.args[5])
    per_row = math.prod(out) // out[node.args[4][0]]
    return 2 * (B * C + per_row) * _pairs(node.args[3])


_FORMULAS = {
    **dict.fromkeys(LINEAR, _linear),
    **dict.fromkeys((operator.matmul, torch.matmul, torch.bmm, "matmul", "bmm"), _matmul),
    **dict.fromkeys((SDPA, F.scaled_dot_product_attention), _sdpa),
    **dict.fromkeys((torch.conv1d, torch.conv2d, torch.conv3d, F.conv1d, F.conv2d, F.conv3d), _conv),
    torch.einsum: _einsum,
    nodes.select: _select,
    nodes.weights: _weights,
    nodes.merge: _merge,
    nodes.unmerge: _unmerge,
    nodes.merge_sdpa: _merge_sdpa,
    nodes.unmerge_sdpa: _unmerge_sdpa,
}
