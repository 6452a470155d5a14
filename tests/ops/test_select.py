"""Greedy facility-location selection: the torch op, its definition, and the compiled graph."""

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.ops.selection_cases import greedy_by_definition, objective, tie_free
from toma_fx.ops import TileLayout, facility_location, facility_location_reference, select_destinations
from toma_fx.ops.noise import StepNoise


# (S, C, k): a tile, k = 1, k = S - 1, a size that is no power of two
@pytest.mark.parametrize("S, C, k", [(16, 32, 8), (16, 32, 1), (9, 8, 8), (12, 20, 5)])
def test_matches_greedy_by_definition(S, C, k):
    x = tie_free(4, S, C, k)
    got = facility_location(x, k)
    for g in range(x.shape[0]):
        assert got[g].tolist() == greedy_by_definition(x[g], k)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("k", [2, 3, 4])
def test_within_one_minus_inv_e_of_optimum(seed, k):
    """Brute force over all subsets of an 8-token tile with clustered, partly opposite features."""
    gen = torch.Generator().manual_seed(seed)
    centers = torch.randn(3, 6, generator=gen)
    x = centers[torch.randint(3, (8,), generator=gen)] + 0.5 * torch.randn(8, 6, generator=gen)
    x[::3] *= -1
    best = max(objective(x, D) for D in itertools.combinations(range(8), k))
    got = objective(x, facility_location(x[None], k)[0].tolist())
    assert got >= (1 - 1 / math.e) * best - 1e-9
    assert got <= best + 1e-9


@pytest.mark.parametrize(
    "tiles",
    [
        torch.ones(2, 16, 8),  # identical tokens
        torch.zeros(2, 16, 8),  # all-zero tokens: cosine 0 everywhere
        torch.randn(4, 8).repeat(2, 4, 1),  # 4 distinct tokens, each 4 times
        torch.cat([torch.ones(1, 8, 4), -torch.ones(1, 8, 4)], dim=1),  # two opposite groups
    ],
    ids=["identical", "zeros", "repeated", "opposite"],
)
@pytest.mark.parametrize("k", [1, 5, 16])
def test_picks_are_distinct_and_ascending(tiles, k):
    picks = facility_location(tiles, k)
    assert picks.shape == (tiles.shape[0], k) and picks.dtype == torch.int64
    for row in picks.tolist():
        assert row == sorted(set(row)) and 0 <= row[0] and row[-1] < tiles.shape[1]


def test_k_equal_to_tile_takes_every_token():
    assert facility_location(torch.randn(3, 7, 5), 7).tolist() == [list(range(7))] * 3


def test_opposite_groups_get_one_destination_each():
    x = torch.cat([torch.ones(1, 8, 4), -torch.ones(1, 8, 4)], dim=1)
    (a, b) = facility_location(x, 2)[0].tolist()
    assert a < 8 <= b


def test_each_batch_element_selects_on_its_own_features():
    layout = TileLayout((8, 8), (4, 4), 0.5)
    x = torch.randn(1, 64, 16)
    pair = torch.cat([x, torch.randn(1, 64, 16)])
    same = select_destinations(torch.cat([x, x]), layout)[0]
    differ = select_destinations(pair, layout)[0]
    assert torch.equal(same[0], same[1])
    assert not torch.equal(differ[0], differ[1])
    assert torch.equal(differ[0], select_destinations(x, layout)[0][0])


def test_step_noise_is_one_draw_per_tile_for_every_sample_of_a_batch():
    """With step noise a sample gets the destinations it would get alone (a CFG batch, several prompts),
    and another step's noise moves them."""
    layout = TileLayout((8, 8), (4, 4), 0.5)
    x = torch.randn(1, 64, 16, generator=torch.Generator().manual_seed(0))
    y = torch.randn(1, 64, 16, generator=torch.Generator().manual_seed(1))

    def picks(t, step):
        return select_destinations(t, layout, noise=StepNoise(torch.tensor(step), 1.0))[0]

    both = picks(torch.cat([x, y]), 3)
    assert torch.equal(both[0], picks(x, 3)[0]) and torch.equal(both[1], picks(y, 3)[0])
    assert not torch.equal(picks(x, 4), picks(x, 3))


def test_select_destinations_per_block():
    layout = TileLayout((10, 7), (4, 4), 0.75)  # four blocks: 4x4, 4x3, 2x4 and 2x3 tiles
    dst = select_destinations(torch.randn(2, 70, 8), layout)
    assert [d.shape for d in dst] == [(2, b.num_tiles, b.keep) for b in layout.blocks]
    for d, b in zip(dst, layout.blocks):
        assert d.min() >= 0 and d.max() < b.tile_size
        assert torch.equal(d, d.sort(-1).values)


def test_the_op_passes_opcheck():
    """Schema, fake kernel and dispatch (its CPU body is the reference, checked against the greedy by
    definition above)."""
    torch.library.opcheck(facility_location, (torch.randn(5, 16, 24), 6))


def test_gain_scales_of_one_change_nothing_and_strong_scales_change_picks():
    x = tie_free(4, 16, 32, 8)
    assert torch.equal(facility_location(x, 8, gain_scale=torch.ones(4, 8, 16)), facility_location(x, 8))
    scale = torch.exp(2.0 * torch.randn(4, 8, 16, generator=torch.Generator().manual_seed(0)))
    picks = facility_location(x, 8, gain_scale=scale)
    assert torch.equal(picks, facility_location_reference(x, 8, scale))
    assert not torch.equal(picks, facility_location(x, 8))
    assert all(row == sorted(set(row)) for row in picks.tolist())


def test_the_op_with_gain_scales_passes_opcheck():
    torch.library.opcheck(
        facility_location, (torch.randn(5, 16, 24), 6, None, None, torch.rand(5, 6, 16) + 0.5)
    )


def test_avoiding_the_last_destinations_moves_the_picks_off_them():
    """`select_destinations(..., avoid=(last, factor))`: factor 0 on half the tokens of every tile picks
    the other half (their gains stay positive), a "none yet" mark (-1) changes nothing, and a factor of
    1 changes nothing either."""
    L = TileLayout((8, 8), (4, 4), 0.5)  # K = 8 of S = 16 per tile
    x = torch.randn(1, 64, 16, generator=torch.Generator().manual_seed(0))
    (first,) = select_destinations(x, L)
    (moved,) = select_destinations(x, L, avoid=([first], 0.0))
    assert not (first[..., :, None] == moved[..., None, :]).any()  # the complement of the last picks
    assert all(row == sorted(set(row)) for row in moved.flatten(0, 1).tolist())
    (unmarked,) = select_destinations(x, L, avoid=([torch.full_like(first, -1)], 0.0))
    (same,) = select_destinations(x, L, avoid=([first], 1.0))
    assert torch.equal(unmarked, first) and torch.equal(same, first)


@pytest.mark.parametrize(
    "scale, match",
    [(torch.ones(2, 3, 16), r"gain_scale must be \(2, 4, 16\) float32, got \(2, 3, 16\)"),
     (torch.ones(2, 4, 16, dtype=torch.float64), r"gain_scale must be .* got \(2, 4, 16\) torch.float64")],
)  # fmt: skip
def test_bad_gain_scales_name_the_expected_shape(scale, match):
    with pytest.raises(ValueError, match=match):
        facility_location(torch.randn(2, 16, 4), 4, gain_scale=scale)


@pytest.mark.parametrize("k", [0, 17, -1])
def test_bad_k_names_the_range(k):
    with pytest.raises(ValueError, match=r"k must be in \[1, 16\]"):
        facility_location(torch.randn(2, 16, 4), k)


def test_compiles_to_one_node_without_graph_breaks():
    """The greedy loop is one opaque op, not k unrolled steps, at both graph levels."""
    from torch._dynamo.testing import AotEagerAndRecordGraphs

    torch._dynamo.reset()
    backend = AotEagerAndRecordGraphs()
    fn = torch.compile(lambda x: facility_location(x, 8), backend=backend, fullgraph=True)
    x = torch.randn(4, 16, 32)
    assert torch.equal(fn(x), facility_location_reference(x, 8))
    (dynamo_graph,), (aten_graph,) = backend.graphs, backend.fw_graphs
    for gm in (dynamo_graph, aten_graph):
        calls = [n.target for n in gm.graph.nodes if n.op == "call_function"]
        assert calls == [torch.ops.toma_fx.facility_location.default]


def test_inductor_calls_the_op_once():
    from torch._inductor.utils import run_and_get_code
    from torch.testing import FileCheck

    torch._dynamo.reset()
    layout = TileLayout((8, 8), (4, 4), 0.5)
    fn = torch.compile(lambda x: select_destinations(x, layout)[0], fullgraph=True)
    x = torch.randn(2, 64, 16)
    out, (code,) = run_and_get_code(fn, x)
    assert torch.equal(out, select_destinations(x, layout)[0])
    FileCheck().check_count("torch.ops.toma_fx.facility_location.default(", 1, exactly=True).run(code)


@settings(max_examples=40, deadline=None, database=None)
@given(
    G=st.integers(1, 3),
    S=st.integers(1, 12),
    C=st.integers(1, 6),
    data=st.data(),
)
def test_property_distinct_in_range_and_near_optimal(G, S, C, data):
    """Any tile, any k: distinct ascending picks, and f(picks) >= (1 - 1/e) * optimum (small tiles)."""
    k = data.draw(st.integers(1, S), label="k")
    x = torch.randn(G, S, C, generator=torch.Generator().manual_seed(data.draw(st.integers(0, 2**16))))
    picks = facility_location(x, k)
    for g, row in enumerate(picks.tolist()):
        assert row == sorted(set(row)) and 0 <= row[0] and row[-1] < S
        if S <= 8:
            best = max(objective(x[g], D) for D in itertools.combinations(range(S), k))
            assert objective(x[g], row) >= (1 - 1 / math.e) * best - 1e-9
