"""Every script in examples/ runs as written, at its tiny size, and prints what it promises.

The pipeline and regional examples run with `aot_eager` (their plumbing is under test, Inductor's
kernels are under test elsewhere); `compile_new_dit.py` runs with Inductor, as a user would run it.
"""

import re
import runpy
import sys
from pathlib import Path

import pytest
import torch

EXAMPLES = Path(__file__).parents[1] / "examples"

# example -> (arguments, a pattern every run must print, how many times)
PROMISES = {
    "compile_new_dit.py": (["tiny"], r"FLOP-ideal speedup \d+\.\d\dx", 1),
    "explain_model.py": (["tiny"], r"merged per kind: \{'self': 11, 'cross': 11, 'mlp': 11\}", 1),
    "flux_pipeline.py": (["tiny", "aot_eager"], r"generation \d: \(128, 128\)", 2),
    "merge_tokens.py": (["tiny"], r"\d+ tokens -> \d+ merged; reconstruction PSNR \d+\.\d\d dB", 1),
    "regional_compile.py": (["tiny", "aot_eager"], r"step \d: \|v\| = \d+\.\d\d", 6),
    "sdxl_pipeline.py": (["tiny", "aot_eager"], r"generation \d: 2 images of \(96, 128\)", 2),
}


def test_every_example_has_a_promise():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(PROMISES)


@pytest.mark.parametrize("name", sorted(PROMISES))
def test_example_runs(name, capsys, monkeypatch):
    path = EXAMPLES / name
    if "photograph" in path.read_text():
        pytest.importorskip("skimage", reason="the photographs come with scikit-image (extra 'demo')")
    args, pattern, times = PROMISES[name]
    torch._dynamo.reset()
    monkeypatch.setattr(sys, "argv", [str(path), *args])
    runpy.run_path(str(path), run_name="__main__")
    out = capsys.readouterr().out
    assert len(re.findall(pattern, out)) == times, out
