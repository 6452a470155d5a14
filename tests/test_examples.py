"""Every script in examples/ runs as written."""

import runpy
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parents[1] / "examples").glob("*.py"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(path, capsys):
    pytest.importorskip("skimage", reason="the examples' photographs come with scikit-image (extra 'demo')")
    runpy.run_path(str(path), run_name="__main__")
    assert capsys.readouterr().out
