"""Rewrite planned sites into select -> weights -> merge -> op -> unmerge.

Before (an SDXL self-attention, shapes at 16x16 tokens):

    x = layer_norm(h)                                    (2, 256, 32)
    q = linear(x, Wq); k = linear(x, Wk); v = linear(x, Wv)
    o = linear(sdpa(q', k', v'), Wo)                     (2, 256, 32)
    h = o + h

After:

    dst = select(x, ((16, 16), (4, 4), 0.5), (1, 0, 0, 0))       (2, 128) int64
    w = weights(x, dst, ...)                                      [(2, 16, 8, 16)]
    xm = merge(x, w, ...)                                         (2, 128, 32)
    q = linear(xm, Wq); k = linear(xm, Wk); v = linear(xm, Wv)
    o = linear(sdpa(q', k', v'), Wo)                              (2, 128, 32)
    h = unmerge(o, w, ...) + h                                    (2, 256, 32)

In the SDPA form (`ToMAConfig.merge_form`) there is no weights node: `merge_sdpa(x, dst, ...)` and
`unmerge_sdpa(o, x, dst, ...)` read the site's input and destinations themselves (`_FORMS`).

Each site is analysed on the untouched graph first (`rules.follow` on every node downstream of the
source that reads merged tokens). A direct user of the source that cannot run merged keeps reading the
source itself (exact); a later one gets an unmerge before it. A site whose anchors cannot run merged,
or whose tokens would overlap another site's, is skipped whole with the reason, so a half-rewritten
region never reaches Inductor.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch.fx import GraphModule, Node

from toma_fx.ops import nodes
from toma_fx.passes.discover import Skip
from toma_fx.passes.plan import Site
from toma_fx.passes.rules import LINEAR, Context, Flow, Stop, Tokens, follow
from toma_fx.passes.same_values import representatives

__all__ = ["Rewrite", "analyse", "apply"]


@dataclass
class Rewrite:
    """What merging one site changes: nodes that run merged, patched arguments, tables, and stops."""

    site: Site
    consumers: list[Node]
    merged: dict[Node, Tokens | tuple] = field(default_factory=dict)
    flows: dict[Node, Flow] = field(default_factory=dict)
    stops: dict[Node, list[Node]] = field(default_factory=dict)  # merged node -> users needing it unmerged
    inserted: list[str] = field(default_factory=list)
    selection: list[str] = field(default_factory=list)  # the selection node a group leader inserted

    @property
    def interior(self) -> set[Node]:
        return set(self.consumers) | set(self.flows)

    @property
    def interior_names(self) -> list[str]:
        return [n.name for n in self.interior]


def analyse(site: Site, deps: dict[Node, frozenset[Node]], claimed: set[Node]) -> Rewrite | Skip:
    """Follow merged tokens from the site's source; `claimed` holds nodes earlier sites run merged."""
    c = site.candidate
    x = c.source
    if x in claimed:
        return Skip(c.path, c.kind, "inside another site's merged tokens")
    rw = Rewrite(site, [])
    source = Tokens(axis=c.axis, before=c.before, after=c.after, ndim=3, batch=c.batch)
    stream = deps[c.root]
    ctx = Context(rw.merged, c.n, site.merged, is_table=lambda a: not (deps[a] & stream))
    first_stop = None
    node = x.next
    while node.op != "root":
        starts = x in node.all_input_nodes and _projects(node)
        if starts:  # only projections read the merged source; other readers (a residual) read it as is
            rw.merged[x] = source
        ins = [a for a in node.all_input_nodes if a in rw.merged]
        if ins:
            res = follow(node, ctx)
            if isinstance(res, Stop):
                first_stop = first_stop or f"{res.why} at {node.name}"
                for a in ins:
                    if a is x:
                        continue  # keeps reading the source as it was
                    if not isinstance(rw.merged[a], Tokens) or rw.merged[a].keys is not None:
                        return Skip(c.path, c.kind, f"cannot unmerge before {node.name}: {res.why}")
                    if _mutated(node, a):
                        return Skip(
                            c.path, c.kind, f"an in-place write needs merged tokens unmerged: {res.why}"
                        )
                    rw.stops.setdefault(a, []).append(node)
            else:
                rw.flows[node] = res
                if starts:
                    rw.consumers.append(node)
                if res.tokens is not None:
                    rw.merged[node] = res.tokens
        rw.merged.pop(x, None)
        node = node.next
    missing = [a for a in c.anchors if a not in rw.merged]
    if missing:
        return Skip(c.path, c.kind, f"{missing[0].name} cannot run on merged tokens ({first_stop})")
    if claimed & rw.interior:
        return Skip(c.path, c.kind, "overlaps another site's merged tokens")
    return rw


def _projects(node: Node) -> bool:
    """A reader of the source that starts the merged region: a projection, or a cut of the stream
    along its tokens (text and image parts projected separately)."""
    if node.op == "call_function" and node.target in LINEAR:
        return True
    cuts = (operator.getitem, torch.narrow, torch.split, torch.chunk)
    return (node.op == "call_function" and node.target in cuts) or (
        node.op == "call_method" and node.target in ("narrow", "split", "split_with_sizes", "chunk")
    )


def _mutated(node: Node, a: Node) -> bool:
    """Whether `node` writes into `a` in place (unmerging a copy of `a` would lose the write)."""
    if node.op == "call_function" and node.target is operator.setitem:
        return node.args[0] is a
    return node.op == "call_method" and node.target.endswith("_") and node.args[0] is a


@dataclass(frozen=True)
class _SiteNodes:
    """What a site's merge and unmerge nodes read."""

    site: Site
    dst: Node
    weights: Node | None  # None in a form without merge weights

    @property
    def source(self) -> Node:
        return self.site.candidate.source


@dataclass(frozen=True)
class _Form:
    """A merge form's graph functions: `merge(s)` and `unmerge(s, y, rows)` give (target, args)."""

    weighs: bool  # whether its sites compute merge weights (a `nodes.weights` node)
    merge: Callable[[_SiteNodes], tuple]
    unmerge: Callable[[_SiteNodes, Node, tuple], tuple]


_FORMS = {
    "assignment": _Form(
        weighs=True,
        merge=lambda s: (nodes.merge, (s.source, s.weights, s.site.layout, s.site.rows)),
        unmerge=lambda s, y, rows: (nodes.unmerge, (y, s.weights, s.site.layout, rows)),
    ),
    "sdpa": _Form(
        weighs=False,
        merge=lambda s: (nodes.merge_sdpa, (s.source, s.dst, s.site.layout, s.site.rows, s.site.tau)),
        unmerge=lambda s, y, rows: (
            nodes.unmerge_sdpa,
            (y, s.source, s.dst, s.site.layout, rows, s.site.rows, s.site.tau),
        ),
    ),
}
"""`ToMAConfig.merge_form` -> how its sites are written into the graph."""


def apply(gm: GraphModule, rewrites: list[Rewrite]) -> None:
    """Insert the nodes of every analysed site into `gm` (in place) and recompile it."""
    graph = gm.graph
    same = representatives(graph)  # a table built twice (RoPE for q and for k) is gathered once
    dst: dict[int, Node] = {}
    weights: dict[int, Node] = {}
    gathered: dict[tuple, Node] = {}
    for rw in rewrites:
        site, c = rw.site, rw.site.candidate
        form = _FORMS[site.form]
        layout = site.layout
        segment = site.rows
        new = []
        with graph.inserting_before(min(rw.consumers)):
            if site.leader == site.index:
                # absent at their defaults: graphs as before
                knobs = {"noise": site.noise} if site.noise else {}
                knobs.update({"avoid": site.avoid} if site.avoid != 1.0 else {})
                dst[site.index] = graph.call_function(nodes.select, (c.source, layout, segment), knobs)
                new.append(dst[site.index])
                rw.selection = [dst[site.index].name]
            d = dst[site.leader]
            if form.weighs and site.weights_from == site.index:
                args = (c.source, d, layout, segment, site.tau)
                weights[site.index] = graph.call_function(nodes.weights, args)
                new.append(weights[site.index])
            reads = _SiteNodes(site, d, weights.get(site.weights_from))
            xm = graph.call_function(*form.merge(reads))
            new.append(xm)
        for node, flow in rw.flows.items():
            if flow.args is not None:
                node.args = flow.args
            if flow.kwargs is not None:
                node.kwargs = flow.kwargs
            tables: dict[Node, list[Tokens]] = {}
            for table, tok in flow.tables:
                tables.setdefault(table, []).append(tok)
            for table, toks in tables.items():
                value = table
                for tok in toks:  # one gather per merged axis: a pairwise mask is gathered twice
                    rows = (tok.axis, tok.before, tok.after, tok.batch)
                    key = (same.get(value, value), d, layout, rows, tok.ndim)
                    if key not in gathered or gathered[key] > node:  # reuse only what comes before
                        with graph.inserting_before(node):
                            gathered[key] = graph.call_function(
                                nodes.gather, (value, d, layout, rows, tok.ndim)
                            )
                        new.append(gathered[key])
                    value = gathered[key]
                node.replace_input_with(table, value)
        for consumer in rw.consumers:
            consumer.replace_input_with(c.source, xm)
        for merged_node, users in rw.stops.items():
            tok = rw.merged[merged_node]
            with graph.inserting_before(min(users)):
                rows = (tok.axis, tok.before, tok.after, tok.batch)
                u = graph.call_function(*form.unmerge(reads, merged_node, rows))
            new.append(u)
            for user in users:
                user.replace_input_with(merged_node, u)
        for node in new:
            node.meta["toma_site"] = site.index
        rw.inserted = [node.name for node in new]
    graph.lint()
    gm.recompile()
