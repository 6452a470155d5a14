"""The `toma-fx` commands on tiny built-in models, and their one-line errors."""

import json
import math

import pytest

from toma_fx.cli import main
from toma_fx.pipelines import build_pipeline

TINY = ["--size", "tiny", "--min-tokens", "16"]
FAST = ["--compiler", "aot_eager"]  # the commands' plumbing is under test, not Inductor's kernels


def test_demo_writes_report_and_proxy_samples(tmp_path, capsys):
    """The README's first command (`toma-fx demo`), at a tiny size: speed on a random-weight pipeline,
    pictures from a trained proxy."""
    from PIL import Image

    from toma_fx.bench.fidelity import DEFAULT_METHODS
    from toma_fx.demo import PROXY_PROMPTS

    argv = [
        "demo",
        *TINY,
        "--models",
        "flux",
        "--resolution",
        "128x96",
        "--steps",
        "2",
        "--proxies",
        "flux",
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
    # The proxy's rows: unmerged, then every peer at the demo's ratio, each moved off the unmerged model.
    proxy_rows = report["proxies"]["flux"]["rows"]
    assert [(r["method"], r["ratio"]) for r in proxy_rows] == [("unmerged", 0.0)] + [
        (m, 0.5) for m in DEFAULT_METHODS
    ]
    for r in proxy_rows[1:]:  # a silent no-op gives PSNR inf and no change of the loss
        assert math.isfinite(r["psnr"]) and r["loss_increase"] != 0 and r["flop_speedup"] > 1, r
    # Unmerged and each method side by side, one row per prompt, at 2x under labels.
    picture = Image.open(tmp_path / "proxies" / "samples_flux.png")
    assert picture.size == (2 * 64 * (1 + len(DEFAULT_METHODS)), len(PROXY_PROMPTS) * (2 * 64 + 20))
    assert not (tmp_path / "comparison.png").exists()  # random weights draw noise: no picture of it
    out = capsys.readouterr().out
    assert "flux" in out and "| toma | 0.5 |" in out and "samples_flux.png" in out


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
        (["demo", "--select-avoid", "2"], "must be a number in [0, 1], got '2'"),
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
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    (row,) = report["rows"]
    assert row["model"] == "sd3" and row["flop_ideal_speedup"] > 1
    assert "proxies" not in report  # a user's own pipeline draws its own images
    assert (tmp_path / "out" / "comparison.png").stat().st_size > 0
