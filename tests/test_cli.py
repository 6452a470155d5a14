"""The `toma-fx` commands on tiny built-in models, and their one-line errors."""

import json

import pytest

from toma_fx.cli import main
from toma_fx.pipelines import build_pipeline

TINY = ["--size", "tiny", "--min-tokens", "16"]
FAST = ["--compiler", "aot_eager"]  # the commands' plumbing is under test, not Inductor's kernels


def test_demo_writes_report_and_picture(tmp_path, capsys):
    """The README's first command (`toma-fx demo`), at a tiny size."""
    argv = [
        "demo",
        *TINY,
        "--models",
        "flux",
        "--resolution",
        "128x96",
        "--steps",
        "2",
        "--out",
        str(tmp_path),
        *FAST,
    ]
    assert main(argv) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    (row,) = report["rows"]
    for key in ("step_ms_plain", "step_ms_toma", "speedup", "flop_ideal_speedup", "total_s_plain",
                "total_s_toma", "compile_s_plain", "compile_s_toma", "psnr_db", "ssim",
                "cosine_min"):  # fmt: skip
        assert row[key] is not None, key
    assert row["flop_ideal_speedup"] > 1 and 0 < row["cosine_min"] <= 1 + 1e-6 and 0 < row["ssim"] < 1
    assert len(row["cosine_per_step"]) == 2
    assert (tmp_path / "comparison.png").stat().st_size > 0
    assert "flux" in capsys.readouterr().out


def test_generate_saves_an_image(tmp_path, capsys):
    out = tmp_path / "image.png"
    argv = [
        "generate",
        "--arch",
        "sd3",
        *TINY,
        "--resolution",
        "64x64",
        "--steps",
        "2",
        "--out",
        str(out),
        *FAST,
    ]
    assert main(argv) == 0
    assert out.stat().st_size > 0 and "ms per step" in capsys.readouterr().out


def test_explain_a_built_in_and_a_local_model(tmp_path, capsys):
    assert main(["explain", "--arch", "flux", *TINY, "--resolution", "128x96"]) == 0
    assert "FLOP-ideal speedup" in capsys.readouterr().out
    build_pipeline("pixart").save_pretrained(tmp_path)
    assert main(["explain", "--model", str(tmp_path), "--min-tokens", "16", "--resolution", "128x96"]) == 0
    assert "self" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["generate", "--model", "/nonexistent"],
            "model path '/nonexistent' is not a diffusers pipeline folder",
        ),
        (["demo", "--ratio", "1.5"], "ratio must be in [0, 1)"),
        (["demo", "--select-noise", "-1"], "must be a finite number >= 0, got '-1'"),
        (
            ["explain", *TINY, "--tile", "100x4", "--resolution", "128x128"],
            "tile 100x4 is larger than the 8x8 token grid",
        ),
        (
            ["explain", "--arch", "sdxl", "--size", "tiny", "--resolution", "128x128"],
            "nothing to merge in sdxl",
        ),
        (["demo", "--resolution", "100x100"], "resolution must be a multiple of 16"),
    ],
)
def test_user_errors_are_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        raise SystemExit(main(argv))
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert message in err.strip().splitlines()[-1] and "Traceback" not in err


def test_demo_on_a_local_pipeline(tmp_path):
    build_pipeline("sd3").save_pretrained(tmp_path / "model")
    argv = ["demo", "--model", str(tmp_path / "model"), "--min-tokens", "16", "--resolution", "64x64"]
    assert main([*argv, "--steps", "2", "--out", str(tmp_path / "out"), *FAST]) == 0
    (row,) = json.loads((tmp_path / "out" / "report.json").read_text())["rows"]
    assert row["model"] == "sd3" and row["flop_ideal_speedup"] > 1
