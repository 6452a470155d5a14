"""Graph variants that carry destinations and merge weights between calls, for reuse across steps.

From one rewritten graph, two variants differ only in where the selection and the weights come from:

    variant   destinations                       merge weights     extra outputs
    select    computed, or the given ones when   computed          destinations, kept weights
              its reuse flag is set
    keep      extra inputs                       extra inputs      none

Each is compiled once; `toma_fx.dispatch` picks one per call and sets the flag, so a reuse step runs no
selection (the selection op copies the given destinations) and nothing recompiles. Steps that select
and steps that reuse share one graph: a schedule with reuse costs one compile per graph, as plain
`torch.compile` does. Extra inputs follow the graph's own placeholders and extra outputs follow its
outputs, so parameters keep their positions (cudagraphs treats them as static) and the first outputs are
exactly the model's. A `Slot` names each carried tensor:

    Slot(site, "dst", 0)        (B, Nm) int64   the destinations of a leader site
    Slot(site, "reuse", 0)      () bool         whether `select` takes the given destinations
    Slot(site, "salt", 0)       () int64        the step that keys `select`'s noise (`select_noise > 0`)
    Slot(site, "weights", j)    (B, T_j, K_j, S_j) fp32   element j of a site's merge-weight list
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import torch
from torch.fx import GraphModule, Node, map_arg

from toma_fx.ops import nodes
from toma_fx.passes.pipeline import Result, copy_graph

__all__ = ["Slot", "Variant", "block_key", "build", "looks_like_one_block"]

VARIANTS = {"select": (True, True), "keep": (False, False)}
"""name -> (destinations computed in the graph unless given, weights computed in the graph)"""


@dataclass(frozen=True)
class Slot:
    site: int
    part: str  # "dst", "reuse", "salt" or "weights"
    item: int = 0


@dataclass
class Variant:
    name: str
    gm: GraphModule
    example_inputs: list
    inputs: list[Slot]  # extra inputs, after the graph's own
    outputs: list[Slot]  # extra outputs, after the model's
    num_outputs: int  # the model's outputs

    @property
    def carried_examples(self) -> dict[Slot, torch.Tensor]:
        """The example tensor of each extra input, by slot."""
        return dict(zip(self.inputs, self.example_inputs[len(self.example_inputs) - len(self.inputs) :]))


def build(result: Result, example_inputs: list, name: str, *, emit_weights: bool) -> Variant:
    """The `name` variant of `result.gm`; `emit_weights` returns computed weights as extra outputs."""
    computes_dst, computes_weights = VARIANTS[name]
    gm = copy_graph(result.gm)
    graph = gm.graph
    selects = _tagged(gm, nodes.select)
    weights = _tagged(gm, nodes.weights)
    placeholders = list(graph.find_nodes(op="placeholder"))
    extra_in: list[tuple[Slot, Node, torch.Tensor]] = []
    extra_out: list[tuple[Slot, Node]] = []

    def add_input(slot: Slot, like: torch.Tensor) -> Node:
        """A placeholder for `like` (the example value, fake, of what it stands for)."""
        last = extra_in[-1][1] if extra_in else placeholders[-1]
        with graph.inserting_after(last):
            p = graph.placeholder(f"toma_{slot.part}_{slot.site}_{slot.item}")
        p._dynamo_source = None  # AOTAutograd expects every placeholder of a Dynamo graph to carry one
        p.meta["example_value"] = like
        extra_in.append((slot, p, like))
        return p

    for site, node in selects.items():
        if computes_dst:
            like = node.meta["example_value"]
            kept = add_input(Slot(site, "dst"), like)
            reuse = add_input(Slot(site, "reuse"), _scalar_like(like, torch.bool))
            node.args = (*node.args, kept, reuse)
            if node.kwargs.get("noise"):
                node.args = (*node.args, add_input(Slot(site, "salt"), _scalar_like(like, torch.int64)))
            extra_out.append((Slot(site, "dst"), node))
        else:
            node.replace_all_uses_with(add_input(Slot(site, "dst"), node.meta["example_value"]))
            graph.erase_node(node)
    for site, node in weights.items():
        parts = node.meta["example_value"]
        if computes_weights:
            if emit_weights:
                last = node
                for j in range(len(parts)):
                    with graph.inserting_after(last):
                        last = graph.call_function(operator.getitem, (node, j))
                    last.meta["example_value"] = parts[j]
                    extra_out.append((Slot(site, "weights", j), last))
        else:
            given = [add_input(Slot(site, "weights", j), t) for j, t in enumerate(parts)]
            for user in list(node.users):
                user.args = map_arg(user.args, lambda a, node=node, given=given: given if a is node else a)
            graph.erase_node(node)

    out = graph.output_node()
    returned = out.args[0]
    if not isinstance(returned, (tuple, list)):
        raise ValueError("the graph does not return a tuple of outputs")
    out.args = (tuple(returned) + tuple(n for _, n in extra_out),)
    graph.lint()
    gm.recompile()
    # Every node keeps its example value: the variant only moves values between nodes and inputs, so
    # nothing is run again on fakes.
    inputs = [*example_inputs, *(torch.zeros(t.shape, dtype=t.dtype, device=t.device) for *_, t in extra_in)]
    return Variant(name, gm, inputs, [s for s, *_ in extra_in], [s for s, _ in extra_out], len(returned))


def _scalar_like(like: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A 0-dim example value of `dtype` on `like`'s device, fake in `like`'s mode when it is fake."""
    scalar = torch.zeros((), dtype=dtype, device=like.device)
    mode = getattr(like, "fake_mode", None)
    return mode.from_tensor(scalar) if mode is not None else scalar


def block_key(result: Result) -> int | None:
    """Index of the graph input that identifies the block of the first leader site (the weight of its
    first projection), or None when that weight is not an input. Under regional compilation one graph
    serves many blocks: the weight tells them apart, and stays the same across recompiles."""
    first = min(result.rewrites, key=lambda rw: rw.site.index)
    weight = min(first.consumers).args[1]
    placeholders = list(first.consumers[0].graph.find_nodes(op="placeholder"))
    return placeholders.index(weight) if weight in placeholders else None


def looks_like_one_block(result: Result) -> bool:
    """One selection group with at most one site per kind: a block graph (regional compilation), whose
    calls in a step can share destinations like the sites of a whole-model graph share them in-graph."""
    sites = [rw.site for rw in result.rewrites]
    kinds = [s.candidate.kind for s in sites]
    return len({s.leader for s in sites}) == 1 and len(set(kinds)) == len(kinds)


def _tagged(gm: GraphModule, target) -> dict[int, Node]:
    return {n.meta["toma_site"]: n for n in gm.graph.find_nodes(op="call_function", target=target)}
