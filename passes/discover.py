"""Find merge candidates in a Dynamo graph: attention and MLP anchors, the token input of each, and
which of its rows are image rows.

Anchors are found by what ops do, never by module class or input name:

    attention  `scaled_dot_product_attention` (positional or keyword), and hand-written
               `softmax(q @ k^T) @ v`
    MLP        linear -> activation -> linear, with gating glue between (GELU, GEGLU, SwiGLU, ...)
    seen, left alone (reported)   linear attention (`k^T v` contracts the tokens) and convolutional
               feed-forwards (a 3x3 conv mixes neighbouring tokens)

An anchor's *source* is the `(B, L, C)` token tensor its first projections read, found by walking back
from the queries (or the MLP's first linear) to the nearest linears. Merging the source, not the
projections' outputs, makes the q/k/v and MLP projections run on merged tokens. A low-rank update
of a projection (an unfused LoRA: `base(x) + up(down(x)) * s`) is one linear map of `x`, so it reads
the same source and the MLP's first linear is found through it. Kinds follow from the
sources:

    self    q, k, v from one source              cross   k, v from another (text) source
    joint   q concatenates image and text        single  self attention and an MLP share the source
    mlp     an MLP alone

The source's image rows are the segment of its token axis whose origin traces to a grid
(`rows/`, `grid.py`); every other row (captions, padding, registers) stays unmerged.
`nn_module_stack` only names regions in the report.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch.fx import GraphModule, Node
from torch.fx.operator_schemas import normalize_function

from toma_fx.passes.grid import ContextGrid, Grid, grid_of
from toma_fx.passes.rows import Axis, RowOrigins, Segment, is_state, row_origins
from toma_fx.passes.rules import LINEAR, SDPA, example

__all__ = ["Candidate", "Skip", "discover", "module_path", "user_inputs"]

_ACTIVATIONS = {torch._C._nn.gelu, F.gelu, F.silu, F.relu, torch.relu, F.mish, F.hardswish, F.elu}
_ACTIVATION_METHODS = {"gelu", "silu", "relu", "mish"}
_MLP_GLUE = {operator.getitem, operator.mul, torch.mul, F.dropout, torch.cat}
_MLP_GLUE_METHODS = {"chunk", "split", "mul", "contiguous", "to", "float", "half", "bfloat16", "type_as"}
_SOFTMAX = {torch.softmax, F.softmax}
_MATMUL = {operator.matmul, torch.matmul, torch.bmm}
_CONV = {torch.conv1d, torch.conv2d, torch.conv3d, F.conv1d, F.conv2d, F.conv3d}
_SCORE_GLUE = {operator.mul, operator.truediv, operator.add, operator.sub, torch.mul, torch.div, torch.add}
_SCORE_GLUE_METHODS = {"mul", "div", "add", "sub", "float", "to", "type_as", "masked_fill", "contiguous"}
_ATTENTION_KERNEL = re.compile(r"attention|attn", re.IGNORECASE)
_CASTS = {"to", "float", "half", "bfloat16", "type_as"}
_LAYOUT_METHODS = {"view", "reshape", "unflatten", "permute", "transpose", "contiguous", "flatten"}


@dataclass
class Candidate:
    """A merge site: the token tensor `source` `(B, before + n + after, C)` and what reads it.

    The `n` image rows lie on `grid`, made from graph input `root` (an operand that does not depend on
    `root` and has one row per token is a per-position table). Tokens run along `axis` of the source
    and samples along `batch`: `(1, 0)`, or `(0, 1)` for a sequence-first `(L, B, C)` model."""

    source: Node
    kind: str
    path: str
    anchors: list[Node]
    n: int
    before: int
    after: int
    grid: Grid
    root: Node
    axis: int = 1
    batch: int = 0


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
    queries: Node | None = None  # of the first attention: where RoPE may tell the rows' positions


def discover(
    gm: GraphModule, contexts: list[ContextGrid], example_inputs: list = ()
) -> tuple[list[Candidate], list[Skip]]:
    """Candidates in graph order, and the anchors that cannot be merged with the reason."""
    env = row_origins(gm, example_inputs)
    images = _Images(gm, env, contexts)
    sites: dict[Node, _Site] = {}
    skips: list[Skip] = []
    attentions = _attentions(gm)
    for anchor, (q, k) in attentions.items():
        found = _attention(anchor, q, k, images)
        if isinstance(found, Skip):
            skips.append(found)
        else:
            kind, source = found
            site = sites.setdefault(source, _Site())
            site.attention.append((kind, anchor))
            site.queries = site.queries or q
    skips += _linear_attention(gm, env, images, attentions)
    skips += _other_attention(gm, attentions)
    for node in gm.graph.nodes:
        if _is_activation(node):
            found = _mlp(node, images)
            if isinstance(found, Skip):
                skips.append(found)
            elif found is not None:
                source, last = found
                sites.setdefault(source, _Site()).mlp.append(last)

    order = {n: i for i, n in enumerate(gm.graph.nodes)}
    candidates = []
    for source, site in sorted(sites.items(), key=lambda kv: order[kv[0]]):
        kinds = {k for k, _ in site.attention}
        anchors = [a for _, a in site.attention] + site.mlp
        # several attentions may read one input (self and cross attention from the same queries, cross
        # attention to text and to an image prompt); joint attention owns its input
        several = len(site.attention) > 1 and "joint" in kinds
        if several or (site.mlp and kinds - {"self"}):
            why = "several attentions share one input"
            skips.append(Skip(module_path(anchors[0]), "/".join(sorted(kinds)), why))
            continue
        if not kinds:
            kind = "mlp"
        elif site.mlp:
            kind = "single"
        else:
            kind = kinds.pop() if len(kinds) == 1 else "self"  # self and cross attention from one input
        axis, before, n, grid, root = images.segment(source, site.queries)
        L = example(source).shape[axis]
        path = _common_path(anchors)
        after = L - before - n
        candidates.append(
            Candidate(source, kind, path, anchors, n, before, after, grid, root, axis, 1 - axis)
        )
    return candidates, skips


class _Images:
    """The image rows of token tensors: `(offset, length, Grid, root)` of the largest image segment."""

    def __init__(self, gm: GraphModule, env: RowOrigins, contexts: list[ContextGrid]):
        self.env, self.contexts = env, contexts
        projected = set()  # token inputs some linear reads: streams, not tables or ids
        for node in gm.graph.find_nodes(op="call_function", target=torch._C._nn.linear):
            dims = env.of(node.args[0])
            for seg in dims[1] if dims is not None and len(dims) == 3 else ():
                for f in seg.factors or ():
                    if f.root.op == "placeholder" and f.dim == 1 and example(f.root).dim() == 3:
                        projected.add(f.root)
        self._input_rows = tuple(example(p).shape[1] for p in projected)

    def grid(self, seg) -> Grid | str:
        """The grid of a segment of rows, or why they are not image rows."""
        return grid_of(seg, self.env, self.contexts, self._input_rows)

    def find(self, source: Node, queries: Node | None = None) -> tuple[int, int, int, Grid, Node] | str:
        """`(token axis, offset, length, grid, root)` of the largest image segment of `source`'s rows,
        along dim 1, or dim 0 of a sequence-first model. `queries`, the attention's queries computed
        from the source, may tell the rows' positions (RoPE applied to them) when it does not."""
        dims = self.env.of(source)
        ex = example(source)
        if dims is None or ex is None or ex.dim() != 3:
            return "the token input is not (batch, tokens, channels)"
        q = self.env.of(queries) if queries is not None else None
        reasons = []
        for axis in (1, 0):
            rows = dims[axis] if q is None or len(q) < 2 else _seen_in(dims[axis], q[-2])
            best, offset = None, 0
            for seg in rows:
                found = self.grid(seg)
                if isinstance(found, Grid):
                    if best is None or seg.size > best[2]:
                        best = (axis, offset, seg.size, found, seg.factors[0].root)
                elif axis == 1:
                    reasons.append(found)
                offset += seg.size
            if best is not None:
                return best
        return "; ".join(dict.fromkeys(reasons))

    def segment(self, source: Node, queries: Node | None) -> tuple[int, int, int, Grid, Node]:
        found = self.find(source, queries)
        assert not isinstance(found, str)
        return found


def _seen_in(rows: Axis, later: Axis) -> Axis:
    """`rows` of a source as its queries see them: each segment replaced by the queries' segments cut
    from it, which may carry positions (RoPE tables applied to the queries)."""
    out = []
    for seg in rows:
        parts = [s for s in later if _cut_from(s, seg)]
        out += parts if sum(s.size for s in parts) == seg.size else [seg]
    return tuple(out)


def _cut_from(part: Segment, seg: Segment) -> bool:
    if not part.factors or not seg.factors or len(part.factors) != len(seg.factors):
        return False
    f, g = part.factors[0], seg.factors[0]
    same = (f.root, f.dim, f.fine) == (g.root, g.dim, g.fine) and part.factors[1:] == seg.factors[1:]
    return same and g.start <= f.start and f.start + f.size <= g.start + g.size


def _attentions(gm: GraphModule) -> dict[Node, tuple[Node, Node]]:
    """Attention anchors in graph order: node -> (queries, keys)."""
    found = {}
    for node in gm.graph.nodes:
        if node.op == "call_function" and node.target in (SDPA, F.scaled_dot_product_attention):
            norm = normalize_function(node.target, node.args, node.kwargs, normalize_to_only_use_kwargs=True)
            if norm is not None:
                found[node] = (norm.kwargs["query"], norm.kwargs["key"])
        elif _is_softmax(node):
            scores = _back(node.args[0], _SCORE_GLUE, _SCORE_GLUE_METHODS, _MATMUL)
            values = _forward(node, {F.dropout}, {"to", "float", "type_as", "half", "bfloat16"}, _MATMUL)
            if scores is not None and values is not None:
                found[values] = (scores.args[0], scores.args[1])
    return found


def _attention(anchor: Node, q: Node, k: Node, images: _Images) -> tuple[str, Node] | Skip:
    path = module_path(anchor)
    queries = [s for s in _sources(q) if _is_stream(s)]
    if not queries:
        return Skip(path, "attention", "queries do not come from a linear projection of tokens")
    found = {s: images.find(s, q) for s in queries}
    image = [s for s, f in found.items() if not isinstance(f, str)]
    if len(image) != 1:
        why = (
            "queries from several image token sets"
            if image
            else f"no image rows in the queries: {found[queries[0]]}"
        )
        return Skip(path, "attention", why)
    source = image[0]
    keys = {s for s in _sources(k) if _is_stream(s)}
    if len(queries) > 1 or (source in keys and len(keys) > 1):
        return "joint", source
    return ("self" if keys == {source} else "cross"), source


def _linear_attention(gm, env: RowOrigins, images: _Images, attentions) -> list[Skip]:
    """Products that contract image rows outside softmax attention: reported, never merged."""
    skips = []
    for node in gm.graph.nodes:
        if node.op != "call_function" or node.target not in _MATMUL or node in attentions:
            continue
        a = env.of(node.args[0])
        if a is None or len(a) < 2:
            continue
        if any(isinstance(images.grid(s), Grid) for s in a[-1]):
            why = "linear attention: k^T v sums over the tokens, its cost is already linear in them"
            skips.append(Skip(module_path(node), "attention", why))
    return _dedupe(skips)


def _other_attention(gm: GraphModule, attentions) -> list[Skip]:
    """Attention kernels the pass does not anchor (FlexAttention, flash and sage kernels behind custom
    ops): reported, never merged. Named by what their op is called, since their arguments (block masks,
    packed varlen layouts) say nothing the pass could use."""
    skips = []
    for node in gm.graph.nodes:
        if (
            node.op != "call_function"
            or node in attentions
            or node.target in (SDPA, F.scaled_dot_product_attention)
        ):
            continue
        name = str(getattr(node.target, "__name__", node.target))
        if _ATTENTION_KERNEL.search(name):
            why = f"{name}: an attention kernel the pass does not anchor (only sdpa and softmax(q k^T) v)"
            skips.append(Skip(module_path(node), "attention", why))
    return _dedupe(skips)


def _mlp(act: Node, images: _Images) -> tuple[Node, Node] | Skip | None:
    """`(source, second linear)` of an MLP around `act`, a Skip for a conv feed-forward on tokens, or
    None when `act` is not between two linears."""
    first = _back(
        act.args[0] if act.args else None, _MLP_GLUE, _MLP_GLUE_METHODS, set(LINEAR) | _CONV, hops=3
    )
    if first is None:
        return None
    if first.target in _CONV:
        if _from_tokens(first.args[0]):
            why = "a convolutional feed-forward: its spatial conv mixes neighbouring tokens"
            return Skip(module_path(act), "mlp", why)
        return None
    source = first.args[0]
    if not _is_stream(source):
        return None
    last = _forward(act, _MLP_GLUE, _MLP_GLUE_METHODS, set(LINEAR) | _CONV, hops=4)
    if last is None or last.target in _CONV:
        return None
    found = images.find(source)
    if isinstance(found, str):
        return Skip(_common_path([last]), "mlp", f"no image rows: {found}")
    return source, last


def _back(node, functions, methods, targets, hops: int = 8) -> Node | None:
    """The nearest node calling one of `targets` upstream of `node` through glue ops (first inputs)."""
    for _ in range(hops):
        if not isinstance(node, Node):
            return None
        if node.op == "call_function" and node.target in targets:
            return node
        if (node.op == "call_function" and node.target in functions) or (
            node.op == "call_method" and node.target in methods
        ):
            node = node.args[0]
            continue
        if _is_low_rank_sum(node):
            node = node.args[0]  # base(x) + up(down(x)) * s: the base projection's side
            continue
        return None
    return None


def _low_rank_inner(linear: Node) -> Node | None:
    """The inner linear of `up(down(x))`, through dtype casts and dropout, or None."""
    return _back(linear.args[0], {F.dropout}, _CASTS, LINEAR, hops=3)


def _is_linear(node) -> bool:
    return isinstance(node, Node) and node.op == "call_function" and node.target in LINEAR


def _is_low_rank_sum(node: Node) -> bool:
    """`base(x) + up(down(x)) * s`: a projection and a low-rank update of it (LoRA, unfused), which is
    one linear map of `x`."""
    if not (node.op == "call_function" and node.target in (operator.add, torch.add) and len(node.args) == 2):
        return False
    base, update = node.args
    if not (_is_linear(base) and isinstance(update, Node)):
        return False
    up = _back(update, {operator.mul, torch.mul}, {"mul", *_CASTS}, LINEAR, hops=3)
    return up is not None and _low_rank_inner(up) is not None and _sources(update) == _sources(base)


def _undropped(x):
    """`x` under an inference dropout (`F.dropout(x, p, training=False)`), which returns `x`."""
    while (
        isinstance(x, Node)
        and x.op == "call_function"
        and x.target is F.dropout
        and not (x.args[2] if len(x.args) > 2 else x.kwargs.get("training", True))
    ):
        x = x.args[0]
    return x


def _forward(node: Node, functions, methods, targets, hops: int = 4) -> Node | None:
    """The nearest node calling one of `targets` downstream of `node` through glue ops."""
    frontier = list(node.users)
    for _ in range(hops):
        nxt = []
        for u in frontier:
            if u.op == "call_function" and u.target in targets:
                return u
            if (u.op == "call_function" and u.target in functions) or (
                u.op == "call_method" and u.target in methods
            ):
                nxt.extend(u.users)
        frontier = nxt
    return None


def _sources(start: Node) -> set[Node]:
    """Inputs of the nearest `linear`s upstream of `start` (the tensors its projections read)."""
    found, seen, stack = set(), set(), [start]
    while stack:
        node = stack.pop()
        if node in seen or not isinstance(node, Node):
            continue
        seen.add(node)
        if node.op == "call_function" and node.target in LINEAR:
            inner = _low_rank_inner(node)
            if inner is not None:  # up(down(x)): a linear of x (a LoRA branch)
                stack.append(inner)
            else:
                found.add(_lifted(_undropped(node.args[0])))
            continue
        if node.op in ("call_function", "call_method"):
            stack.extend(a for a in node.all_input_nodes if not (a.op == "placeholder" and is_state(a)))
    return found


def _lifted(x: Node) -> Node:
    """The stream `x` is cut from along the token axis, if it is one (HunyuanVideo's single blocks
    project `norm(h)[:, :-T]` and `norm(h)[:, -T:]`, or their concatenation back): merging the stream
    merges every cut at once."""
    while isinstance(x, Node):
        parent = _rejoined(x)
        if x.op == "call_function" and x.target is operator.getitem and isinstance(x.args[0], Node):
            src, index = x.args
            if src.op in ("call_function", "call_method") and _splits_tokens(src):
                parent = src.args[0]  # an element of split / chunk along dim 1
            elif isinstance(index, tuple) and len(index) >= 2 and index[0] == slice(None):
                rest = index[2:]
                if isinstance(index[1], slice) and all(i == slice(None) or i is Ellipsis for i in rest):
                    parent = src
        if parent is None or not _is_stream(parent) or example(parent).shape[2] != example(x).shape[2]:
            return x
        x = parent
    return x


def _rejoined(x: Node) -> Node | None:
    """The stream a `cat` along the tokens puts back together from its consecutive cuts, or None."""
    if not (x.op == "call_function" and x.target is torch.cat and isinstance(x.args[0], (tuple, list))):
        return None
    dim = x.args[1] if len(x.args) > 1 else x.kwargs.get("dim", 0)
    parts = x.args[0]
    if not isinstance(dim, int) or dim % 3 != 1 or not all(isinstance(p, Node) for p in parts):
        return None
    cuts = [_token_cut(p) for p in parts]
    if None in cuts or len({c[0] for c in cuts}) != 1:
        return None
    parent = cuts[0][0]
    L = example(parent).shape[1]
    bounds = sorted((c[1], c[2]) for c in cuts)
    covered = (
        bounds[0][0] == 0 and bounds[-1][1] == L and all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    )
    return parent if covered and example(x).shape == example(parent).shape else None


def _token_cut(node: Node) -> tuple[Node, int, int] | None:
    """`(stream, start, stop)` of `stream[:, start:stop]`."""
    if (
        node.op != "call_function"
        or node.target is not operator.getitem
        or not isinstance(node.args[0], Node)
    ):
        return None
    src, index = node.args
    if not (_is_stream(src) and isinstance(index, tuple) and len(index) >= 2 and index[0] == slice(None)):
        return None
    if not isinstance(index[1], slice) or any(i not in (slice(None), Ellipsis) for i in index[2:]):
        return None
    start, stop, step = index[1].indices(example(src).shape[1])
    return (src, start, stop) if step == 1 else None


def _splits_tokens(node: Node) -> bool:
    name = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", "")
    if name not in ("split", "split_with_sizes", "chunk", "tensor_split"):
        return False
    dim = node.args[2] if len(node.args) > 2 else node.kwargs.get("dim", 0)
    return isinstance(dim, int) and dim % 3 == 1


def _is_stream(node: Node) -> bool:
    ex = example(node)
    return ex is not None and ex.dim() == 3 and ex.shape[1] > 1


def _from_tokens(node: Node) -> bool:
    """Whether a map was made from a token tensor by layout ops (as conv feed-forwards of DiTs are)."""
    for _ in range(6):
        if not isinstance(node, Node) or node.op != "call_method" or node.target not in _LAYOUT_METHODS:
            return False
        node = node.args[0]
        if _is_stream(node):
            return True
    return False


def _is_activation(node: Node) -> bool:
    return (node.op == "call_function" and node.target in _ACTIVATIONS) or (
        node.op == "call_method" and node.target in _ACTIVATION_METHODS
    )


def _is_softmax(node: Node) -> bool:
    dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
    is_call = (node.op == "call_function" and node.target in _SOFTMAX) or (
        node.op == "call_method" and node.target == "softmax"
    )
    ex = example(node)
    return is_call and isinstance(dim, int) and ex is not None and dim % ex.dim() == ex.dim() - 1


def user_inputs(gm: GraphModule) -> dict[Node, frozenset[Node]]:
    """For every node, the graph inputs (not parameters or buffers) it depends on."""
    deps: dict[Node, frozenset[Node]] = {}
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            deps[node] = frozenset() if is_state(node) else frozenset([node])
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


def _dedupe(skips: list[Skip]) -> list[Skip]:
    return list(dict.fromkeys(skips))
