"""`toma-fx bench fidelity` on the shipped proxies, at a size a test can afford: every method changes the
model it runs on, the table has a row per method and ratio, and the files it promises are written."""

import json
import math

import pytest
import torch

from toma_fx.bench import fidelity

METHODS = ("toma", "strided", "todo")  # random differs from strided only in its chooser (test_choosers)


def test_fidelity_report_rows_and_picture(tmp_path):
    from PIL import Image

    # One proxy, one ratio, one sample and one held-out crop: every call has batch 1, so each method
    # compiles once. The Flux proxy runs every method in the demo's test (`tests/test_cli.py`); the peers
    # without a setting: `test_peers_without_a_setting_say_why`.
    r = fidelity.run(tmp_path, proxies=("sdxl",), ratios=(0.5,), methods=METHODS, seeds=1, prompts=(4,),
                     steps=2, held_out=1)  # fmt: skip
    rows = r["proxies"]["sdxl"]["rows"]
    assert rows[0]["method"] == "unmerged" and rows[0]["swd"] > 0
    assert [(row["method"], row["ratio"]) for row in rows[1:]] == [(m, 0.5) for m in METHODS]
    for row in rows[1:]:
        # Each method changed the model: a silent no-op gives PSNR inf and no change of the loss.
        assert math.isfinite(row["psnr"]) and row["loss_increase"] != 0, row
        assert row["flop_speedup"] > 1, row
    toma, todo = (next(x for x in rows if x["method"] == m) for m in ("toma", "todo"))
    assert toma["flop_speedup"] > todo["flop_speedup"]  # ToDo keeps every query: less saved at 0.5
    assert json.loads((tmp_path / "report.json").read_text())["proxies"].keys() == {"sdxl"}
    assert "| toma | 0.5 |" in (tmp_path / "report.md").read_text()
    picture = Image.open(tmp_path / "samples_sdxl.png")
    # unmerged + each method, 1 sample, at 2x, under a 20-pixel label band
    assert picture.size == (2 * 64 * (1 + len(METHODS)), 2 * 64 + 20)


def test_peers_without_a_setting_say_why(tmp_path):
    by_name = {m.name: m for m in fidelity.METHODS}
    model = torch.nn.Linear(1, 1)  # never called: the reason comes before any compile
    for name in ("strided", "todo"):
        assert "keep 1/2 or 1/4" in by_name[name].make(model, "flux", 0.25, fidelity.ToMAConfig())
    r = fidelity.run(tmp_path, proxies=("sdxl",), ratios=(0.25,), methods=("strided", "todo"), seeds=1,
                     prompts=(4,), steps=1, held_out=1)  # fmt: skip
    rows = r["proxies"]["sdxl"]["rows"][1:]
    assert [(row["method"], "keep 1/2 or 1/4" in row["skipped"]) for row in rows] == [
        ("strided", True),
        ("todo", True),
    ]
    assert "| strided | 0.25 | n/a:" in (tmp_path / "report.md").read_text()


def test_missing_weights_are_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        fidelity.main(["--weights", str(tmp_path), "--proxies", "sdxl", "--out", str(tmp_path / "out")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "no trained sdxl proxy" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
