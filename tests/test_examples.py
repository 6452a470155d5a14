"""Every script in examples/ runs as written, at its tiny size."""

import runpy
import sys
from pathlib import Path

import pytest
import torch

EXAMPLES = sorted((Path(__file__).parents[1] / "examples").glob("*.py"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(path, capsys, monkeypatch):
    if "photograph" in path.read_text():
        pytest.importorskip("skimage", reason="the photographs come with scikit-image (extra 'demo')")
    torch._dynamo.reset()
    monkeypatch.setattr(sys, "argv", [str(path), "tiny"])
    runpy.run_path(str(path), run_name="__main__")
    assert capsys.readouterr().out
