"""Timing shared by the benchmarks: the device's own clock, and the environment to print beside results."""

from __future__ import annotations

import importlib
import importlib.util
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils import benchmark

__all__ = ["TimeFn", "device_and_dtype", "environment", "make_timer", "time_call"]

TimeFn = Callable[[Callable[[], object]], float]


def device_and_dtype(
    device: str | torch.device | None, dtype: torch.dtype | None
) -> tuple[torch.device, torch.dtype]:
    """Defaults: CUDA when present, bf16 there and fp32 on CPU."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return device, dtype or (torch.bfloat16 if device.type == "cuda" else torch.float32)


def make_timer(device: torch.device, min_run_time: float) -> tuple[TimeFn, str]:
    """`(fn -> median ms per call, a description)`, by the device's own clock; min_run_time (s): CPU only."""
    if device.type == "cpu":

        def time_cpu(fn: Callable[[], object]) -> float:
            # Warm up first: a cold call (lazy init, first touch of fresh memory) can outlast
            # min_run_time, and blocked_autorange would keep that slow call as its only sample.
            fn()
            timer = benchmark.Timer("fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
            return timer.blocked_autorange(min_run_time=min_run_time).median * 1e3

        return time_cpu, f"torch.utils.benchmark blocked_autorange median, min_run_time {min_run_time}s"
    try:
        from triton.testing import do_bench
    except ImportError:
        do_bench = None

    def time_cuda(fn: Callable[[], object]) -> float:
        # A call outside the timer: Triton JIT and Inductor compile would skew do_bench's estimate
        # of how many repetitions fit in its budget.
        fn()
        torch.cuda.synchronize()
        if do_bench is None:  # median of 25 CUDA-event timings (no L2 flush, unlike do_bench)
            events = [[torch.cuda.Event(enable_timing=True) for _ in range(2)] for _ in range(25)]
            for start, end in events:
                start.record()
                fn()
                end.record()
            torch.cuda.synchronize()
            return statistics.median([start.elapsed_time(end) for start, end in events])
        try:
            ms = do_bench(fn, quantiles=[0.5])  # triton >= 2.1: a float for a single quantile
        except TypeError:
            ms = do_bench(fn)  # triton 2.0: no `quantiles`; a tuple of percentiles, median first
        return float(ms[0] if isinstance(ms, (tuple, list)) else ms)

    return time_cuda, "triton.testing.do_bench median" if do_bench else "CUDA events, median of 25"


def environment(device: torch.device, dtype: torch.dtype, min_run_time: float = 1.0) -> dict:
    """Device name, versions, dtype and timer, for the report header and the JSON log."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        # platform.processor() is often just "x86_64" on Linux; /proc/cpuinfo names the model.
        info = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []
        model = next((ln.split(":", 1)[1].strip() for ln in info if ln.startswith("model name")), None)
        name = f"CPU {model or platform.machine()}, {torch.get_num_threads()} threads"
    env = {
        "device": name,
        "torch": torch.__version__,
        "dtype": str(dtype).removeprefix("torch."),
        "python": platform.python_version(),
        "timer": make_timer(device, min_run_time)[1],
    }
    if device.type == "cuda":
        has_triton = importlib.util.find_spec("triton") is not None
        env["triton"] = importlib.import_module("triton").__version__ if has_triton else None
    return env


def time_call(fn: Callable[[], object], device: torch.device) -> float:
    """Wall-clock ms of one call, synchronised on CUDA: for whole-model calls, timed one by one so that
    calls of different models can alternate."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) * 1e3
