"""The installed package: lean import, the `passes` folder under its installed name, the CLI's errors."""

import json
import subprocess
import sys

import pytest

from toma_fx.cli import main


def run_python(code: str, cwd) -> str:
    """Run in a fresh interpreter outside the checkout, so only the installed package is importable."""
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


def test_import_neither_triton_nor_cuda(tmp_path):
    out = run_python(
        "import sys, torch, toma_fx, toma_fx.ops\n"
        "triton = any(m == 'triton' or m.startswith('triton.') for m in sys.modules)\n"
        "print(triton, torch.cuda.is_initialized())",
        tmp_path,
    )
    assert out.split() == ["False", "False"]


def test_passes_install_as_a_subpackage_only(tmp_path):
    out = run_python(
        "import importlib.util, toma_fx.passes\n"
        "print(toma_fx.passes.__name__, importlib.util.find_spec('passes') is None)",
        tmp_path,
    )
    assert out.split() == ["toma_fx.passes", "True"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["bench", "photos", "--ratios", "1.5"], "ratio must be in [0, 1)"),
        (["bench", "photos", "--tile", "4y"], "argument --tile: must look like 4x4"),
        (["bench", "photos", "--tile", "0x4"], "argument --tile: sides must be >= 1"),
        (["bench", "photos", "--tile", "100x4"], "tile must fit in the grid"),
        (["nonsense"], "invalid choice"),
    ],
)
def test_user_errors_are_one_line_without_traceback(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        sys.exit(main(argv))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_photos_bench_writes_its_report_and_picture(tmp_path, capsys):
    pytest.importorskip("skimage", reason="the photographs come with scikit-image (extra 'demo')")
    assert main(["bench", "photos", "--out", str(tmp_path), "--ratios", "0.75"]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert {r["ratio"] for r in report["rows"]} == {0.75}
    assert (tmp_path / "reconstructions.png").stat().st_size > 10_000
    assert "facility" in capsys.readouterr().out
