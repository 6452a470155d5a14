"""`toma-fx bench model`: a real side-by-side run on a tiny model, and one-line errors for bad flags."""

import pytest

from toma_fx import ToMAConfig
from toma_fx.bench import model
from toma_fx.cli import main


def test_run_reports_both_timings_and_the_flop_ideal():
    r = model.run(
        "plain-dit",
        "tiny",
        latent=(16, 16),
        config=ToMAConfig(min_tokens=16),
        repeats=1,
        compiler="aot_eager",
    )
    assert r["plain_ms"] > 0 and r["toma_ms"] > 0
    assert r["speedup"] == pytest.approx(r["plain_ms"] / r["toma_ms"], rel=0.02)
    assert r["flop_ideal_speedup"] > 1 and r["gflop_toma"] <= r["gflop_plain"]
    assert r["regions"] == {"self": 2, "mlp": 2}


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--ratio", "1.5", "ratio"),
        ("--latent", "128", "argument --latent: must look like 4x4"),
        ("--repeats", "0", "int >= 1"),
    ],
)
def test_bad_flags_are_one_line_errors(flag, value, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(["bench", "model", flag, value])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
