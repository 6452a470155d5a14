"""The token rules one op at a time: does it run on merged tokens, and where are they in its output?

Each case is a function of `x (B=2, N=20, C=8)` whose tokens (axis 1: 4 text rows, then 16 image
rows, merged to 8) are merged; its ops are judged in order, and the verdict of the last one (or the
first stop) is compared with the expected token axis of the output, or the start of the reason.
"""

import operator

import pytest
import torch
import torch.nn.functional as F

from toma_fx.passes.rules import FLOW, Context, Flow, Stop, Tokens, follow

from .graphs import inputs, the_node, traced

X = Tokens(axis=1, before=4, after=0, ndim=3)


def verdict(fn, *extra, table: int | None = None):
    """`table`: the index of an extra input that is a per-position table (not token rows)."""
    gm, _ = traced(fn, torch.randn(2, 20, 8), *extra)
    x, *rest = inputs(gm)
    merged = {x: X}
    ctx = Context(merged, n=16, m=8, is_table=lambda a: table is not None and a is rest[table])
    res = None
    for node in gm.graph.nodes:
        if node.op in ("call_function", "call_method") and any(a in merged for a in node.all_input_nodes):
            res = follow(node, ctx)
            if isinstance(res, Stop):
                return res
            if res.tokens is not None:
                merged[node] = res.tokens
    return res


FLOWS = [  # (case, fn, token axis of the output)
    ("x.pow(2)", lambda x: x.pow(2), 1),
    ("rsqrt of a mean over channels", lambda x: torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6), 1),
    ("an op PyTorch tags pointwise (erf)", lambda x: torch.erf(x), 1),
    ("in place (mul_)", lambda x: x.clone().mul_(2), 1),
    ("operator **", lambda x: x**2, 1),
    ("mean over channels", lambda x: x.mean(-1), 1),
    ("layer norm", lambda x: F.layer_norm(x, (8,)), 1),
    ("x[..., :half]", lambda x: x[..., :4], 1),
    ("heads out of channels", lambda x: x.unflatten(-1, (2, 4)), 1),
    ("a head-first transpose", lambda x: x.view(2, 20, 2, 4).transpose(1, 2), 2),
    ("heads back to channels", lambda x: x.view(2, 20, 2, 4).transpose(1, 2).transpose(1, 2).flatten(2), 1),
    ("chunk on channels", lambda x: x.chunk(2, dim=-1), None),
    ("view_as_complex", lambda x: torch.view_as_complex(x.unflatten(-1, (4, 2))), 1),
    ("a contraction over channels", lambda x: torch.einsum("bnc,cd->bnd", x, torch.ones(8, 3)), 1),
    ("softmax over channels", lambda x: x.softmax(-1), 1),
    ("an unknown op acting per token (sort on channels)", lambda x: torch.sort(x, dim=-1).values + 1, 1),
]


@pytest.mark.parametrize("case, fn, axis", FLOWS, ids=[c for c, *_ in FLOWS])
def test_flows(case, fn, axis):
    res = verdict(fn)
    assert isinstance(res, Flow), res
    if axis is not None:
        assert isinstance(res.tokens, Tokens) and res.tokens.axis == axis


STOPS = [  # (case, fn, reason)
    ("mean over the tokens", lambda x: x.mean(1), "a reduction over the token or batch axis"),
    ("a slice through the image rows", lambda x: x[:, 6:10], "a slice cutting through the merged tokens"),
    ("softmax over the tokens", lambda x: x.softmax(1), "a softmax over the token or batch axis"),
    (
        "a linear over the tokens",
        lambda x: x.transpose(1, 2) @ torch.ones(20, 3),
        "a product over the token axis",
    ),
    ("splitting the tokens", lambda x: x.reshape(2, 4, 5, 8), "reshape folding or splitting"),
    ("an unknown op mixing tokens (flip)", lambda x: torch.flip(x, [1]), "unknown op"),
]


@pytest.mark.parametrize("case, fn, why", STOPS, ids=[c for c, *_ in STOPS])
def test_stops(case, fn, why):
    res = verdict(fn)
    assert isinstance(res, Stop) and res.why.startswith(why), res


def test_a_residual_with_unmerged_tokens_stops():
    res = verdict(lambda x, h: x + h, torch.randn(2, 20, 8))
    assert isinstance(res, Stop) and res.why.startswith("combines merged with unmerged tokens")


def test_a_rope_table_is_gathered():
    res = verdict(lambda x, cos: x * cos, torch.randn(20, 8), table=0)
    assert isinstance(res, Flow) and len(res.tables) == 1


def test_a_reshape_spelling_the_token_count_is_patched():
    res = verdict(lambda x: x.reshape(2, 20, 2, 4))
    assert res.args[1:] == (2, 12, 2, 4) and res.tokens.axis == 1  # 4 text + 8 merged rows


def test_text_only_slices_flow_as_text():
    res = verdict(lambda x: x[:, :4])
    assert isinstance(res, Flow) and res.tokens is None


def test_a_buffer_written_by_slices():
    """Wan's RoPE: `out = empty_like(x); out[..., 0::2] = ...`: a merged buffer written with merged values."""

    def rope(x):
        out = torch.empty_like(x)
        out[..., 0::2] = x[..., 0::2]
        return out

    assert isinstance(verdict(rope), Flow)  # empty_like
    gm, _ = traced(rope, torch.randn(2, 20, 8))
    x = inputs(gm)[0]
    calls = [n for n in gm.graph.nodes if n.op == "call_function"]
    merged = {x: X}
    ctx = Context(merged, 16, 8, lambda a: False)
    for node in calls:
        res = follow(node, ctx)
        assert isinstance(res, Flow), (node, res)
        if isinstance(res.tokens, Tokens):
            merged[node] = res.tokens


def test_hand_written_attention():
    """`q @ k^T` gives scores over merged keys, `softmax(-1)` is attention's own, `p @ v` contracts them."""

    def attention(x):
        return (x @ x.transpose(1, 2)).softmax(-1) @ x

    gm, _ = traced(attention, torch.randn(2, 20, 8))
    x = inputs(gm)[0]
    merged = {x: X}
    ctx = Context(merged, 16, 8, lambda a: False)
    verdicts = []
    for node in gm.graph.nodes:
        if node.op in ("call_function", "call_method") and any(a in merged for a in node.all_input_nodes):
            res = follow(node, ctx)
            verdicts.append(res)
            assert isinstance(res, Flow), (node, res)
            merged[node] = res.tokens
    assert verdicts[-1].tokens.keys is None and verdicts[-2].tokens.keys == 2


def test_in_place_operators_share_the_out_of_place_rule():
    assert FLOW._functions[operator.add] is FLOW.lookup(
        the_node(traced(lambda x: x.clone().__iadd__(1), torch.randn(2, 3))[0], skip=1)
    )
