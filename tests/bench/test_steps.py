"""`toma-fx bench steps`: every kind of step timed side by side on a tiny model."""

import pytest

from toma_fx import ToMAConfig
from toma_fx.bench import steps
from toma_fx.cli import main


def test_run_times_every_kind_of_step():
    r = steps.run(
        "plain-dit",
        "tiny",
        latent=(16, 16),
        config=ToMAConfig(min_tokens=16),
        repeats=1,
        compiler="aot_eager",
    )
    assert set(r["ms"]) == set(steps.KINDS) and all(ms > 0 for ms in r["ms"].values())
    assert r["selection_share"] == pytest.approx(
        (r["ms"]["select"] - r["ms"]["reuse"]) / r["ms"]["select"], abs=0.01
    )
    assert r["flop_ideal_speedup"] > 1


def test_bad_flags_are_one_line_errors(capsys):
    with pytest.raises(SystemExit) as e:
        main(["bench", "steps", "--tile", "4"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "argument --tile: must look like 4x4" in err and "Traceback" not in err
