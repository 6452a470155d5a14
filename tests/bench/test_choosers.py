"""The destination choices the benchmarks put in place of ToMA's selection."""

import pytest
import torch

import toma_fx
from tests.compiler.helpers import output
from toma_fx.architectures import build, example_inputs
from toma_fx.bench.choosers import chooser, fixed_destinations, swap_selection
from toma_fx.ops import nodes

LAYOUT = ((8, 8), (4, 4), 0.75)  # 8 x 8 tokens, 4 x 4 tiles, 4 destinations per tile
ROWS = (1, 0, 0, 0)  # tokens on axis 1, nothing before or after them, batch on axis 0


def x(batch=2):
    return torch.randn(batch, 64, 6, generator=torch.Generator().manual_seed(0))


def test_strided_keeps_one_token_per_2x2_cell():
    dst = chooser("strided")(x(), LAYOUT, ROWS)
    assert dst.shape == (2, 16) and dst.dtype == torch.int64
    for tile in dst.reshape(2, 4, 4):  # (tiles, K) per sample
        for picks in tile:
            cells = sorted(((p // 4) // 2 * 2 + (p % 4) // 2).item() for p in picks)
            assert cells == [0, 1, 2, 3]


def test_random_draws_distinct_tokens_afresh_each_call_and_is_seeded():
    a, b = chooser("random", seed=1), chooser("random", seed=1)
    first, again = a(x(), LAYOUT, ROWS), a(x(), LAYOUT, ROWS)
    assert not torch.equal(first, again) and torch.equal(first, b(x(), LAYOUT, ROWS))
    per_tile = first.reshape(2, 4, 4)
    assert all(len(set(t.tolist())) == 4 for t in per_tile.reshape(-1, 4))
    assert per_tile.min() >= 0 and per_tile.max() < 16


def test_random_drawn_once_is_the_same_at_every_call():
    once = chooser("random", seed=1, fresh=False)
    first = once(x(), LAYOUT, ROWS)
    assert torch.equal(first, once(x(), LAYOUT, ROWS))
    assert torch.equal(first, chooser("random", seed=1)(x(), LAYOUT, ROWS))  # the fresh chooser's first


def test_fixed_destinations_are_evenly_spaced_in_every_tile():
    dst = fixed_destinations(x(), LAYOUT, ROWS)
    assert torch.equal(dst.reshape(2, 4, 4), torch.tensor([0, 5, 10, 15]).expand(2, 4, 4))


def test_choosers_are_named_and_checked():
    with pytest.raises(ValueError, match="chooser must be"):
        chooser("facility")
    with pytest.raises(ValueError, match="strided cells do not fit"):
        chooser("strided")(x(), ((8, 8), (4, 4), 0.25), ROWS)
    assert nodes.tile_layout(LAYOUT).num_merged == 16


def test_choosers_take_the_selection_knobs_a_rewritten_graph_passes():
    """A graph compiled with `select_noise` and `select_avoid` calls its selection with those keywords
    and the kept destinations, reuse flag and salt: a chooser swapped in takes them all."""
    model = build("plain-dit", "tiny").eval()
    inputs = example_inputs("plain-dit", model)
    with torch.no_grad():
        plain = output(model(**inputs))
    config = toma_fx.ToMAConfig(min_tokens=16, select_noise=1.0, select_avoid=0.5)
    for select in (chooser("strided"), chooser("random"), fixed_destinations):
        backend = toma_fx.toma_backend.configure(config, inner=swap_selection(select))
        fn = torch.compile(model, backend=backend, fullgraph=True)
        with torch.no_grad(), toma_fx.step(0):
            merged = output(fn(**inputs))
        assert merged.shape == plain.shape and not torch.equal(merged, plain)  # merged, by the chooser
        torch._dynamo.reset()
