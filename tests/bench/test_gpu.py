"""`toma-fx bench gpu` at tiny size on CPU, so the one prepared GPU run cannot rot before a GPU is lent:
both models, every file, the report's shape; the CUDA tests' runner on stand-in tests."""

import json

import pytest

from toma_fx.bench import gpu
from toma_fx.cli import main


def test_the_gpu_run_at_tiny_size(tmp_path):
    argv = [
        "bench",
        "gpu",
        "--archs",
        "flux",
        "--size",
        "tiny",
        "--device",
        "cpu",
        "--resolution",
        "128x128",
        "--steps",
        "2",
        "--min-tokens",
        "16",
        "--compiler",
        "aot_eager",
        "--no-tests",
        "--out",
        str(tmp_path),
    ]  # fmt: skip  (SDXL takes the same path: tests/bench/test_pipeline.py runs it through the benchmark)
    assert main(argv) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert list(report["models"]) == ["flux"] and report["tests"] is None
    for arch, model in report["models"].items():
        rows = {row["method"]: row for row in model["rows"]}
        assert list(rows) == ["compile", "toma 0.5"]
        assert rows["toma 0.5"]["flop_ideal_speedup"] > 1 and rows["toma 0.5"]["step_ms"] > 0
        assert (tmp_path / arch / "report.json").is_file() and (tmp_path / arch / "samples.png").is_file()
    text = (tmp_path / "report.md").read_text()
    assert text.count("Speedups and fidelity against plain torch.compile") == 1
    assert "CUDA tests: not run." in text and "Wall time, all of it:" in text


def test_the_cuda_tests_are_run_and_reported(tmp_path):
    for test in gpu.CUDA_TESTS:
        path, _, name = test.partition("::")
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(f"def {name or 'test_kernel'}():\n    pass\n")
    result = gpu._run_tests(tmp_path)
    assert result["returncode"] == 0 and "2 passed" in result["summary"]
    (tmp_path / gpu.CUDA_TESTS[0]).write_text("def test_kernel():\n    assert False\n")
    result = gpu._run_tests(tmp_path)
    assert result["returncode"] == 1 and "1 failed" in result["summary"]
    assert "FAILED (exit 1)" in gpu.format_report({"models": {}, "tests": result, "wall_s": 1.0})


def test_a_missing_tests_folder_is_one_line(capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        main(["bench", "gpu", "--tests", str(tmp_path / "nowhere"), "--out", str(tmp_path)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "argument --tests:" in err and "is not a folder" in err
