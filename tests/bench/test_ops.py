"""The operator benchmark produces every column, and refuses bad flags in one line."""

import pytest

from toma_fx.bench.ops import format_table, main, run


def test_every_column_is_measured():
    (row,) = run(["sdxl-32x32"], [(4, 4)], min_run_time=0.01)
    for key in ("select_ms", "weights_ms", "merge_ms", "unmerge_ms", "merge_sdpa_ms", "unmerge_sdpa_ms"):
        assert row[key] > 0, key
    assert row["merged"] == 512 and row["attn_len_merged"] == 512
    assert row["toma_total_ms"] == pytest.approx(
        row["select_ms"] + row["weights_ms"] + row["merge_ms"] + row["unmerge_ms"]
    )
    assert row["ideal_attn_speedup"] == pytest.approx(4.0)
    assert "sdxl-32x32" in format_table([row])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--ratio", "1"], "ratio must be in [0, 1)"),
        (["--configs", "sd9"], "unknown config sd9"),
        (["--tiles", "100x4"], "does not fit"),
        (["--min-run-time", "0"], "must be a number > 0"),
    ],
)
def test_bad_flags(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
