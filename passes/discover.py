"""Find merge candidates in a Dynamo graph: attention calls and MLP chains, and the token input of each.

Anchors are single ops, found by target, never by diffusers class:

    attention  `F.scaled_dot_product_attention`, positional or keyword (normalised first)
    MLP        linear -> activation (GELU, tanh-GELU, GEGLU, SwiGLU) -> linear

An anchor's *source* is the token tensor `(B, L, C)` its first projections read: walking back from the
queries (or the MLP's first linear) to the nearest `linear`. Merging the source, not the projections'
outputs, makes the q/k/v and MLP projections run on merged tokens. Kinds follow from the sources:

    self    q, k, v from one source              cross   k, v from another (text) source
    joint   q concatenates image and text        single  self attention and an MLP share the source
    mlp     an MLP alone

Where a source's tokens came from (`Origin`) tells image from text and gives the grid when tokens were
made from a `(B, C, H, W)` map. `nn_module_stack` only names regions in the report.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from toma_fx.passes.tokens import LINEAR, SDPA, example
from torch.fx import GraphModule, Node
from torch.fx.operator_schemas import normalize_function

__all__ = ["Candidate", "Origin", "Skip", "discover", "module_path", "user_inputs"]

_ACTIVATIONS = {torch._C._nn.gelu, F.gelu, F.silu, F.relu, torch.relu, F.mish}
_MLP_GLUE = {"chunk", "split", "mul", "contiguous", "to", "float"}
_TEXT_HINTS = ("encoder_hidden_states", "context", "txt", "text", "prompt", "caption")
_MAX_WALK = 64


@dataclass(frozen=True)
class Origin:
    """Where a token tensor's rows come from: an input, a `(B, C, H, W)` map, or a concatenation."""

    text: bool = False
    grid: tuple[int, int] | None = None
    root: Node | None = None  # the input or map the rows were made from
    parts: tuple[tuple[int, Origin | None], ...] = ()  # (length, origin) along the tokens, for a concat


@dataclass
class Candidate:
    """A merge site: the token tensor `source` `(B, before + n + after, C)` and what reads it."""

    source: Node
    kind: str
    path: str
    anchors: list[Node]
    n: int
    before: int = 0
    after: int = 0
    grid: tuple[int, int] | None = None
    root: Node | None = (
        None  # where the image tokens were made: an operand free of it is a per-position table
    )


@dataclass(frozen=True)
class Skip:
    """A candidate left as it is, and why."""

    path: str
    kind: str
    why: str


@dataclass
class _Site:
    attention: list[tuple[str, Node]] = field(default_factory=list)
    mlp: list[Node] = field(default_factory=list)


def discover(gm: GraphModule) -> tuple[list[Candidate], list[Skip]]:
    """Candidates in graph order, and the anchors that cannot be merged with the reason."""
    origins = _origins(gm)
    sites: dict[Node, _Site] = {}
    skips: list[Skip] = []
    for node in gm.graph.nodes:
        if node.op != "call_function":
            continue
        if node.target is SDPA:
            found = _attention(node, origins)
            if isinstance(found, Skip):
                skips.append(found)
            else:
                kind, source = found
                sites.setdefault(source, _Site()).attention.append((kind, node))
        elif node.target in _ACTIVATIONS:
            chain = _mlp_chain(node)
            if chain is not None:
                source, last = chain
                if _is_text(origins.get(source)):
                    skips.append(Skip(module_path(last), "mlp", "text tokens are never merged"))
                else:
                    sites.setdefault(source, _Site()).mlp.append(last)

    candidates = []
    for source, site in sorted(sites.items(), key=lambda kv: _order(gm)[kv[0]]):
        kinds = {k for k, _ in site.attention}
        anchors = [a for _, a in site.attention] + site.mlp
        if len(site.attention) > 1 or (site.mlp and kinds - {"self"}):
            skips.append(
                Skip(module_path(anchors[0]), "/".join(sorted(kinds)), "several attentions share one input")
            )
            continue
        kind = "mlp" if not kinds else ("single" if site.mlp else kinds.pop())
        segment = _image_segment(source, origins.get(source))
        path = _common_path(anchors)
        if segment is None:
            skips.append(Skip(path, kind, "cannot tell the image tokens from the text tokens"))
            continue
        before, n, after, origin = segment
        grid, root = (origin.grid, origin.root) if origin else (None, None)
        candidates.append(Candidate(source, kind, path, anchors, n, before, after, grid, root))
    return candidates, skips


def user_inputs(gm: GraphModule) -> dict[Node, frozenset[Node]]:
    """For every node, the graph inputs (not parameters or buffers) it depends on."""
    deps: dict[Node, frozenset[Node]] = {}
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            deps[node] = frozenset() if _is_state(node) else frozenset([node])
        else:
            deps[node] = frozenset().union(*(deps[a] for a in node.all_input_nodes))
    return deps


def module_path(node: Node) -> str:
    """`down_blocks.1.attentions.0.transformer_blocks.0.attn1` from Dynamo's `nn_module_stack`."""
    stack = node.meta.get("nn_module_stack")
    if not stack:
        return node.name
    return _clean_path(list(stack.values())[-1][0])


def _clean_path(path: str) -> str:
    path = re.sub(r"__dict__\['_modules'\]\['(\w+)'\]", r"\1", path)
    path = re.sub(r"^L\['self'\]\.?|^L\['(\w+)'\]", r"\1", path)
    path = re.sub(r"\['(\w+)'\]", r".\1", path)
    return re.sub(r"\.{2,}", ".", path).strip(".") or "<model>"


def _common_path(anchors: list[Node]) -> str:
    paths = [module_path(a).split(".") for a in anchors]
    common = []
    for parts in zip(*paths):
        if len(set(parts)) > 1:
            break
        common.append(parts[0])
    if len(anchors) == 1 and anchors[0].target in LINEAR:  # an MLP: name the block, not its last linear
        common = common[:-2] if len(common) > 2 and common[-2] == "net" else common[:-1]
    return ".".join(common) or "<model>"


def _is_state(node: Node) -> bool:
    return (
        "_parameters_" in node.name
        or "_buffers_" in node.name
        or isinstance(node.meta.get("example_value"), torch.nn.Parameter)
    )


def _order(gm: GraphModule) -> dict[Node, int]:
    return {n: i for i, n in enumerate(gm.graph.nodes)}


def _origins(gm: GraphModule) -> dict[Node, Origin | None]:
    """`Origin` of every 3-D `(B, L, C)` tensor, following rows through ops that keep them."""
    origins: dict[Node, Origin | None] = {}
    for node in gm.graph.nodes:
        ex = example(node)
        if ex is None or ex.dim() != 3:
            continue
        if node.op == "placeholder":
            if not _is_state(node):
                origins[node] = Origin(text=any(h in node.name.lower() for h in _TEXT_HINTS), root=node)
            continue
        found = _map_grid(node)
        if found is not None:
            origins[node] = Origin(grid=found[0], root=found[1])
        elif node.target is torch.cat and _cat_dim(node) % 3 == 1:
            origins[node] = Origin(parts=tuple((example(t).shape[1], origins.get(t)) for t in node.args[0]))
        elif node.target is operator.getitem and isinstance(node.args[0], Node) and node.args[0] in origins:
            origins[node] = _sliced(origins[node.args[0]], node.args[1], example(node.args[0]).shape[1])
        else:
            for a in node.all_input_nodes:
                ea = example(a)
                if a in origins and ea is not None and ea.dim() == 3 and ea.shape[1] == ex.shape[1]:
                    origins[node] = origins[a]
                    break
    return origins


def _sliced(origin: Origin | None, index, length: int) -> Origin | None:
    """Origin of `x[index]` when the index slices the token axis to exactly one part of a concat."""
    if origin is None or not origin.parts or not isinstance(index, tuple) or len(index) < 2:
        return None
    s = index[1]
    if not isinstance(s, slice) or s.step not in (None, 1) or index[0] != slice(None):
        return None
    start, stop, _ = s.indices(length)
    offset = 0
    for size, part in origin.parts:
        if (offset, offset + size) == (start, stop):
            return part
        offset += size
    return None


def _cat_dim(node: Node) -> int:
    return node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)


def _map_grid(node: Node) -> tuple[tuple[int, int], Node] | None:
    """`((H, W), map)` when `node` `(B, H*W, C)` is a `(B, C, H, W)` or `(B, H, W, C)` map made tokens.

    The reshapes between the map and `node` are replayed on groups of the map's dims, so that only a
    token axis made of the map's two spatial dims counts (not, say, heads folded back into channels).
    """
    chain, cur = [], node
    while len(chain) < 3 and cur.op == "call_method" and cur.target in _LAYOUT_METHODS:
        chain.append(cur)
        cur = cur.args[0]
        ex = example(cur)
        if ex is None:
            return None
        if ex.dim() == 4:
            break
    else:
        return None
    dims = [(d,) for d in range(4)]
    shape = list(example(cur).shape)
    for op in reversed(chain):
        dims, shape = _replay(op, dims, shape)
        if dims is None:
            return None
    if dims == [(0,), (2, 3), (1,)]:
        return (int(example(cur).shape[2]), int(example(cur).shape[3])), cur
    if dims == [(0,), (1, 2), (3,)]:
        return (int(example(cur).shape[1]), int(example(cur).shape[2])), cur
    return None


_LAYOUT_METHODS = ("view", "reshape", "flatten", "transpose", "permute", "contiguous")


def _replay(op: Node, dims: list, shape: list):
    """Dim groups and shape after `op`, or `(None, None)` for a reshape that is not a pure merge."""
    args, nd = op.args[1:], len(dims)
    if op.target == "contiguous":
        return dims, shape
    if op.target == "transpose":
        a, b = (x % nd for x in args[:2])
        perm = list(range(nd))
        perm[a], perm[b] = b, a
    elif op.target == "permute":
        perm = [p % nd for p in (args[0] if isinstance(args[0], (tuple, list)) else args)]
    else:
        out = list(example(op).shape)
        groups, i = [], 0
        for size in out:
            group, p = [], 1
            while i < nd and (p < size or (not group and size == 1 and shape[i] == 1)):
                group.append(i)
                p *= shape[i]
                i += 1
            if p != size or not group:
                return None, None
            groups.append(group)
        if i != nd:
            return None, None
        return [sum((dims[g] for g in group), ()) for group in groups], out
    return [dims[p] for p in perm], [shape[p] for p in perm]


def _is_text(origin: Origin | None) -> bool:
    return origin is not None and origin.text


def _image_segment(source: Node, origin: Origin | None):
    """`(before, n, after, origin of the image rows)` in `source`, or None when ambiguous."""
    L = example(source).shape[1]
    if origin is None or not origin.parts:
        return None if _is_text(origin) else (0, L, 0, origin)
    image = [k for k, (_, o) in enumerate(origin.parts) if not _is_text(o)]
    if len(image) != 1:
        return None
    k = image[0]
    sizes = [s for s, _ in origin.parts]
    return sum(sizes[:k]), sizes[k], sum(sizes[k + 1 :]), origin.parts[k][1]


def _sources(start: Node) -> set[Node]:
    """Inputs of the nearest `linear`s upstream of `start` (the tensors its projections read)."""
    found, seen, stack = set(), set(), [start]
    while stack and len(seen) < _MAX_WALK:
        node = stack.pop()
        if node in seen or not isinstance(node, Node):
            continue
        seen.add(node)
        if node.op == "call_function" and node.target in LINEAR:
            found.add(node.args[0])
            continue
        if node.op in ("call_function", "call_method"):
            stack.extend(a for a in node.all_input_nodes if not (a.op == "placeholder" and _is_state(a)))
    return found


def _attention(node: Node, origins) -> tuple[str, Node] | Skip:
    path = module_path(node)
    norm = normalize_function(node.target, node.args, node.kwargs, normalize_to_only_use_kwargs=True)
    if norm is None:
        return Skip(path, "attention", "attention call with unknown arguments")
    q, k = norm.kwargs["query"], norm.kwargs["key"]
    queries = {s for s in _sources(q) if (e := example(s)) is not None and e.dim() == 3}
    if not queries:
        return Skip(path, "attention", "queries do not come from a linear projection of tokens")
    image = [s for s in queries if not _is_text(origins.get(s))]
    if len(image) != 1:
        why = "attention over text tokens only" if not image else "queries from several token sets"
        return Skip(path, "attention", why)
    source = image[0]
    keys = _sources(k)
    if len(queries) > 1 or (source in keys and len(keys) > 1):
        return "joint", source
    return ("self" if keys == {source} else "cross"), source


def _mlp_chain(act: Node) -> tuple[Node, Node] | None:
    """`(source, second linear)` when `act` sits between two linears (glue ops allowed), else None."""
    first = act.args[0] if act.args else None
    for _ in range(3):
        if not isinstance(first, Node):
            return None
        if first.op == "call_function" and first.target in LINEAR:
            break
        if (first.op == "call_method" and first.target in _MLP_GLUE) or first.target is operator.getitem:
            first = first.args[0]
            continue
        return None
    else:
        return None
    source = first.args[0]
    ex = example(source)
    if ex is None or ex.dim() != 3:
        return None
    frontier = list(act.users)
    for _ in range(4):
        nxt = []
        for u in frontier:
            if u.op == "call_function" and u.target in LINEAR:
                return source, u
            glue = (u.op == "call_method" and u.target in _MLP_GLUE) or (
                u.op == "call_function" and u.target in (F.dropout, torch.cat, operator.mul)
            )
            if glue:
                nxt.extend(u.users)
        frontier = nxt
    return None
