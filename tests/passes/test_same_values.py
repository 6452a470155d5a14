"""`passes.same_values`: nodes computing the same value share a representative; what is written in
place, random, or not a pure call keeps its own."""

import torch
from torch.fx import symbolic_trace

from toma_fx.passes.same_values import representatives


def reps_of(fn, *example) -> dict[str, str]:
    """Representatives by node name, on `fn` traced symbolically, or by Dynamo on `example` inputs (for
    what symbolic tracing cannot record: slice assignment)."""
    if example:
        graphs = []

        def capture(gm, inputs):
            graphs.append(gm)
            return gm.forward

        torch.compile(fn, backend=capture, fullgraph=True)(*example)
        gm = graphs[0]
    else:
        gm = symbolic_trace(fn)
    return {n.name: r.name for n, r in representatives(gm.graph).items()}


def test_a_table_built_twice_is_one_value():
    def rope(x, freqs):
        cos_q = freqs[None, :, None, :].to(torch.float32).cos()
        cos_k = freqs[None, :, None, :].to(torch.float32).cos()
        return x * cos_q + x * cos_k

    reps = reps_of(rope)
    assert reps["cos_1"] == "cos"  # the second table, and each step of its chain, is the first one's
    assert reps["getitem_1"] == "getitem" and reps["to_1"] == "to"
    assert reps["mul_1"] == "mul"  # and so is x * cos_k


def test_scalars_of_another_type_are_another_value():
    reps = reps_of(lambda x: (x + 1, x + 1.0, x + True))
    assert len({reps["add"], reps["add_1"], reps["add_2"]}) == 3


def test_buffers_written_in_place_keep_their_own_value():
    def fill(x):
        a = torch.empty_like(x)
        a[..., 0::2] = x[..., 0::2]
        b = torch.empty_like(x)
        b[..., 0::2] = -x[..., 0::2]
        view_a, view_b = a.view(-1), b.view(-1)
        c = x.clone()
        c.add_(1)
        d = x.clone()
        return view_a, view_b, c, d

    reps = reps_of(fill, torch.randn(2, 4))
    for name in ("a", "b", "view_a", "view_b", "c", "d"):  # c is written, d is not: not one value
        assert reps[name] == name


def test_reads_around_a_write_are_two_values():
    def twice(x):
        x = x.clone()
        before = x * 2
        x.add_(1)
        return before, x * 2

    reps = reps_of(twice, torch.randn(3))
    assert reps["mul_1"] == "mul_1"


def test_random_ops_and_inputs_are_never_shared():
    reps = reps_of(lambda x, y: (torch.rand_like(x), torch.rand_like(x), torch.dropout(x, 0.5, True), y))
    assert reps["rand_like_1"] == "rand_like_1" and reps["y"] == "y"
