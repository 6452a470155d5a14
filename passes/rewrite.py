"""Rewrite planned sites into select -> weights -> merge -> op -> unmerge.

Before (an SDXL self-attention, shapes at 16x16 tokens):

    x = layer_norm(h)                                    (2, 256, 32)
    q = linear(x, Wq); k = linear(x, Wk); v = linear(x, Wv)
    o = linear(sdpa(q', k', v'), Wo)                     (2, 256, 32)
    h = o + h

After:

    dst = select(x, ((16, 16), (4, 4), 0.5), (1, 0, 0))         (2, 128) int64
    w = weights(x, dst, ...)                                      [(2, 16, 8, 16)]
    xm = merge(x, w, ...)                                         (2, 128, 32)
    q = linear(xm, Wq); k = linear(xm, Wk); v = linear(xm, Wv)
    o = linear(sdpa(q', k', v'), Wo)                              (2, 128, 32)
    h = unmerge(o, w, ...) + h                                    (2, 256, 32)

Each site is analysed on the untouched graph first (`tokens.follow` from the source's linear users);
a site whose anchors cannot run merged, or whose tokens would overlap another site's, is skipped
whole with the reason, so a half-rewritten region never reaches Inductor.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from toma_fx.passes.discover import Skip
from toma_fx.passes.plan import Site
from toma_fx.passes.tokens import LINEAR, Flow, Stop, Tokens, follow
from torch.fx import GraphModule, Node

from toma_fx.ops import nodes

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

    @property
    def interior(self) -> set[Node]:
        return set(self.consumers) | set(self.flows)


def analyse(site: Site, deps: dict[Node, frozenset[Node]], claimed: set[Node]) -> Rewrite | Skip:
    """Follow merged tokens from the site's source; `claimed` holds nodes earlier sites run merged."""
    c = site.candidate
    x = c.source
    n, m = c.n, site.merged
    root = Tokens(axis=1, before=c.before, after=c.after, ndim=3)
    consumers = [u for u in x.users if u.op == "call_function" and u.target in LINEAR and u.args[0] is x]
    rw = Rewrite(site, consumers, merged=dict.fromkeys(consumers, root))
    if x in claimed or claimed & set(consumers):
        return Skip(c.path, c.kind, "inside another site's merged tokens")

    stream = deps[c.root] if c.root is not None else deps[x]

    def is_table(a: Node) -> bool:
        return not (deps[a] & stream)

    first_stop = None
    node = min(consumers)
    while node.op != "root":
        ins = [a for a in node.all_input_nodes if a in rw.merged]
        if ins and node not in rw.consumers:
            res = follow(node, rw.merged, n, m, is_table)
            if isinstance(res, Stop):
                first_stop = first_stop or f"{res.why} at {node.name}"
                for a in ins:
                    if not isinstance(rw.merged[a], Tokens) or rw.merged[a].batch != 0:
                        return Skip(c.path, c.kind, f"cannot unmerge before {node.name}: {res.why}")
                    rw.stops.setdefault(a, []).append(node)
            else:
                rw.flows[node] = res
                if res.tokens is not None:
                    rw.merged[node] = res.tokens
        node = node.next
    missing = [a for a in c.anchors if a not in rw.merged]
    if missing:
        return Skip(c.path, c.kind, f"{missing[0].name} cannot run on merged tokens ({first_stop})")
    if claimed & rw.interior:
        return Skip(c.path, c.kind, "overlaps another site's merged tokens")
    return rw


def apply(gm: GraphModule, rewrites: list[Rewrite]) -> None:
    """Insert the nodes of every analysed site into `gm` (in place) and recompile it."""
    graph = gm.graph
    dst: dict[int, Node] = {}
    weights: dict[int, Node] = {}
    for rw in rewrites:
        site, c = rw.site, rw.site.candidate
        layout = site.layout
        segment = (1, c.before, c.after)
        new = []
        with graph.inserting_before(min(rw.consumers)):
            if site.leader == site.index:
                dst[site.index] = graph.call_function(nodes.select, (c.source, layout, segment))
                new.append(dst[site.index])
            d = dst[site.leader]
            if site.weights_from == site.index:
                args = (c.source, d, layout, segment, site.tau)
                weights[site.index] = graph.call_function(nodes.weights, args)
                new.append(weights[site.index])
            w = weights[site.weights_from]
            xm = graph.call_function(nodes.merge, (c.source, w, layout, segment))
            new.append(xm)
        for node, flow in rw.flows.items():
            if flow.args is not None:
                node.args = flow.args
            if flow.kwargs is not None:
                node.kwargs = flow.kwargs
            gathered: dict[Node, Node] = {}
            for table, tok in flow.tables:
                if table not in gathered:
                    with graph.inserting_before(node):
                        batch = c.source.meta["example_value"].shape[0]
                        seg = (tok.axis, tok.before, tok.after)
                        gathered[table] = graph.call_function(
                            nodes.gather, (table, d, layout, seg, tok.ndim, batch)
                        )
                        new.append(gathered[table])
                node.replace_input_with(table, gathered[table])
        for consumer in rw.consumers:
            consumer.replace_input_with(c.source, xm)
        for merged_node, users in rw.stops.items():
            tok = rw.merged[merged_node]
            with graph.inserting_before(min(users)):
                u = graph.call_function(
                    nodes.unmerge, (merged_node, w, layout, (tok.axis, tok.before, tok.after))
                )
            new.append(u)
            for user in users:
                user.replace_input_with(merged_node, u)
        for node in new:
            node.meta["toma_site"] = site.index
        rw.inserted = [node.name for node in new]
    graph.lint()
    gm.recompile()
