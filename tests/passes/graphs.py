"""Dynamo graphs of small functions, for testing one rule at a time."""

from __future__ import annotations

import torch
from torch.fx import GraphModule, Node


def traced(fn, *args) -> tuple[GraphModule, list]:
    """The Dynamo graph of `fn(*args)` (one graph) and its example inputs."""
    graphs = []

    def record(gm, example_inputs):
        graphs.append((gm, example_inputs))
        return gm.forward

    torch._dynamo.reset()
    with torch.no_grad():
        torch.compile(fn, backend=record, fullgraph=True, dynamic=False)(*args)
    (found,) = graphs
    return found


def the_node(gm: GraphModule, *, skip: int = 0) -> Node:
    """The first call in the graph (after `skip` calls): the op under test."""
    calls = [n for n in gm.graph.nodes if n.op in ("call_function", "call_method")]
    return calls[skip]


def inputs(gm: GraphModule) -> list[Node]:
    return list(gm.graph.find_nodes(op="placeholder"))
