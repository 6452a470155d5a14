"""`toma-fx bench gpu` (`make bench-gpu`): the GPU headline in one command, run once.

    make bench-gpu                                    # on an H100 / H200: writes toma-fx-out/gpu/
    toma-fx bench gpu --size tiny --device cpu --resolution 128x128 --steps 2 --min-tokens 16 \\
        --compiler aot_eager --no-tests               # the same path at tiny size (what the CPU test runs)

For Flux-dev (bf16, no true CFG) and SDXL (fp16, CFG), each built on the device with random weights: plain
`torch.compile` and ToMA at ratio 0.5, both regional, at 1024x1024 for 20 steps. Each method generates
once to compile and once timed (per step and end to end, compile time, peak memory, FLOP-ideal, PSNR
against plain), then a profile says where a merged step's time goes (`toma-fx bench`, one report
folder per model). Last, with the repository's tests at hand, the CUDA-only tests: the Triton selection
kernel behind the op, and `reduce-overhead` (CUDA graphs) under `toma_fx.apply`. Everything lands in one
folder: `report.json`, `report.md`, and each model's own report under `<arch>/`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from toma_fx import argtypes
from toma_fx.bench import pipeline
from toma_fx.config import ToMAConfig

__all__ = ["CUDA_TESTS", "main", "run"]

ARCHS = ("flux", "sdxl")

CUDA_TESTS = (
    "ops/test_select_triton.py",  # the kernel, behind the op and inside a compiled graph
    "compiler/test_reuse.py::test_reduce_overhead_mode",
)
"""The tests (under `tests/`) that do what only a GPU can check; on a CPU their CUDA cases skip."""


def run(
    out_dir: Path,
    *,
    archs: tuple[str, ...] = ARCHS,
    size: str | None = None,
    resolution: tuple[int, int] = (1024, 1024),
    steps: int = 20,
    ratio: float = 0.5,
    min_tokens: int = ToMAConfig.min_tokens,
    device: str | None = None,
    compiler: str = "inductor",
    tests: Path | None = Path("tests"),
) -> dict:
    """Benchmark each of `archs` and run the CUDA tests under `tests` (None: skip them); writes
    `report.json` and `report.md` into `out_dir` and returns the report."""
    start = time.perf_counter()
    config = ToMAConfig(ratio=ratio, min_tokens=min_tokens)
    models = {}
    for arch in archs:
        models[arch] = pipeline.run(
            out_dir / arch, arch, size, resolution=resolution, steps=steps, ratios=(ratio,), config=config,
            eager=False, tomesd=False, profile=compiler == "inductor", device=device, progress=False,
            compiler=compiler,
        )  # fmt: skip
    report = {
        "models": models,
        "tests": _run_tests(tests) if tests is not None else None,
        "wall_s": time.perf_counter() - start,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2))
    (out_dir / "report.md").write_text(format_report(report) + "\n")
    return report


def _run_tests(tests: Path) -> dict:
    """`pytest` on `CUDA_TESTS` in a fresh process: its command, exit code and last line."""
    command = [sys.executable, "-m", "pytest", "-q", "-rs", *(str(tests / t) for t in CUDA_TESTS)]
    done = subprocess.run(command, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.strip()] or [""]
    return {"command": " ".join(command), "returncode": done.returncode, "summary": lines[-1]}


def format_report(report: dict) -> str:
    """Each model's Markdown report, then the tests and the wall time."""
    parts = [pipeline.format_report(r) for r in report["models"].values()]
    tests = report["tests"]
    if tests is None:
        parts.append("CUDA tests: not run.")
    else:
        verdict = "passed" if tests["returncode"] == 0 else f"FAILED (exit {tests['returncode']})"
        parts.append(f"CUDA tests {verdict}: {tests['summary']}\n\n`{tests['command']}`")
    parts.append(f"Wall time, all of it: {report['wall_s']:.0f} s.")
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="toma-fx bench gpu", description=__doc__.split("\n\n")[0])
    p.add_argument("--archs", nargs="+", choices=ARCHS, default=list(ARCHS))
    p.add_argument("--size", choices=["tiny", "mid", "full"], help="default: full on a GPU, else mid")
    p.add_argument("--resolution", type=argtypes.tile, default=(1024, 1024), help="image HxW")
    p.add_argument("--steps", type=argtypes.count, default=20)
    p.add_argument("--ratio", type=argtypes.ratio, default=0.5)
    p.add_argument("--min-tokens", type=argtypes.count, default=ToMAConfig.min_tokens)
    p.add_argument("--device", help="cpu or cuda (default: cuda when present)")
    argtypes.compiler_flag(p)
    p.add_argument("--tests", type=Path, default=Path("tests"), help="the repository's tests folder")
    p.add_argument("--no-tests", action="store_true", help="leave out the CUDA tests")
    p.add_argument("--out", type=Path, default=Path("toma-fx-out/gpu"), help="report folder")
    args = p.parse_args(argv)
    tests = None if args.no_tests else args.tests
    if tests is not None and not tests.is_dir():
        p.error(f"argument --tests: {str(tests)!r} is not a folder (run from the repository, or --no-tests)")
    try:
        report = run(
            args.out, archs=tuple(args.archs), size=args.size, resolution=args.resolution, steps=args.steps,
            ratio=args.ratio, min_tokens=args.min_tokens, device=args.device, compiler=args.compiler,
            tests=tests,
        )  # fmt: skip
    except ValueError as e:
        print(f"toma-fx bench gpu: error: {e}", file=sys.stderr)
        return 2
    print(format_report(report))
    print(f"\nwrote {args.out}/report.json and report.md")
    return 0 if report["tests"] is None or report["tests"]["returncode"] == 0 else 1
