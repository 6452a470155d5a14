"""The sampling schedule: decisions per step, config validation, and which variants each config needs."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from toma_fx import ToMAConfig
from toma_fx.dispatch import needed_variants
from toma_fx.schedule import Decision, decide


def decisions(steps=10, **schedule) -> str:
    return "".join(decide(ToMAConfig(**schedule), i).value[0] for i in range(steps))


def test_default_merges_and_selects_every_step():
    assert decisions() == "s" * 10
    assert ToMAConfig().scheduled  # step noise and avoidance are on: calls differ by step
    assert not ToMAConfig(select_noise=0.0, select_avoid=1.0).scheduled
    assert ToMAConfig(select_noise=1.0, select_avoid=1.0).scheduled  # the step keys the noise
    assert ToMAConfig(select_noise=0.0, select_avoid=0.5).scheduled  # a fresh selection reads the last one


@pytest.mark.parametrize(
    "schedule, expected",
    [
        (dict(select_every=3), "srrsrrsrrs"),
        (dict(merge_every=3), "soosoosoos"),  # the reference Flux script: every 3rd step, fresh each time
        (dict(warmup_steps=2, merge_every=2, select_every=4), "oosorosoro"),
        (dict(warmup_steps=3, select_every=2), "ooosrsrsrs"),
        (dict(merge_every=2, select_every=3), "sorososoro"),
    ],
)
def test_decisions(schedule, expected):
    assert decisions(**schedule) == expected


@given(warmup=st.integers(0, 5), merge=st.integers(1, 5), select=st.integers(1, 12), steps=st.integers(1, 60))
def test_destinations_are_never_older_than_select_every(warmup, merge, select, steps):
    config = ToMAConfig(warmup_steps=warmup, merge_every=merge, select_every=select)
    last = None
    for i in range(steps):
        d = decide(config, i)
        assert (d is Decision.OFF) == (i < warmup or (i - warmup) % merge != 0)
        if d is Decision.SELECT:
            last = i
        elif d is Decision.REUSE:
            assert last is not None and i - last < select


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("warmup_steps", -1, r"warmup_steps must be an int >= 0, got -1"),
        ("merge_every", 0, r"merge_every must be an int >= 1, got 0"),
        ("select_every", 1.5, r"select_every must be an int >= 1, got 1.5"),
        ("reuse_weights", 1, r"reuse_weights must be True or False, got 1"),
    ],
)
def test_bad_schedule_values_name_the_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        ToMAConfig(**{field: value})


@pytest.mark.parametrize(
    "schedule, chains, expected",
    [
        ({}, False, ["select"]),
        ({}, True, ["select"]),  # reuse steps run `select` with its reuse flag set
        (dict(select_every=3), False, ["select"]),
        (dict(select_every=3, reuse_weights=True), False, ["select", "keep"]),
        (dict(merge_every=3), False, ["select", "off"]),
        (dict(merge_every=3, select_every=3), False, ["select", "off"]),  # every merged step selects
        (dict(share_weights=True), True, ["select", "keep"]),
    ],
)
def test_needed_variants(schedule, chains, expected):
    assert needed_variants(ToMAConfig(**schedule), chains) == expected


@pytest.mark.parametrize(
    "args, message",
    [
        ((-1,), r"step index must be an int >= 0, got -1"),
        ((1.0,), r"step index must be an int >= 0, got 1.0"),
        ((1, 2), r"context must be a str or None, got 2"),
    ],
)
def test_bad_step_arguments_name_the_argument(args, message):
    import toma_fx

    with pytest.raises(ValueError, match=message), toma_fx.step(*args):
        pass
