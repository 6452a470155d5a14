"""Operator benchmark: ToMA's per-block cost next to the attention time it is meant to save.

For each model size and tile, on random features `x: (B, N, C)` with `M = layout.num_merged`:

    select        select_destinations(x, layout)   (B, N, C) -> [(B, T_i, K_i)]   (Triton kernel on CUDA)
    weights       merge_weights(x, dst, layout)    -> [(B, T_i, K_i, S_i)] fp32
    merge         merge(x, w, layout)              (B, N, C) -> (B, M, C)
    unmerge       unmerge(y, w, layout)            (B, M, C) -> (B, N, C)
    merge_sdpa, unmerge_sdpa                       the same two maps in the SDPA form
    attention     F.scaled_dot_product_attention on q, k, v `(B, heads, L, head_dim)`, with
                  L = N + text (full) and L = M + text (merged): the SDPA call only, no projections.

ToMA pays `toma_total = select + weights + merge + unmerge` once per block to save
`attn_full - attn_merged`. Projections and MLP on merged tokens save more; that is not counted here.

    python -c "from toma_fx.bench.ops import main; main(['--configs', 'sdxl-32x32'])"
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch.utils import benchmark

from toma_fx.ops import (
    DEFAULT_TAU, TileLayout, merge, merge_sdpa, merge_weights, select_destinations, unmerge, unmerge_sdpa,
)

__all__ = ["CONFIGS", "BenchConfig", "environment", "format_table", "main", "run"]


@dataclass(frozen=True)
class BenchConfig:
    """One attention site: `tokens` image tokens on a square grid, `channels = heads * head_dim`."""

    tokens: int
    channels: int
    heads: int
    text: int
    """Text tokens joined to the image tokens in attention (Flux's joint attention); never merged."""

    @property
    def grid(self) -> tuple[int, int]:
        side = math.isqrt(self.tokens)
        return side, side

    @property
    def head_dim(self) -> int:
        return self.channels // self.heads


CONFIGS = {
    "flux-1024": BenchConfig(tokens=4096, channels=3072, heads=24, text=512),  # 1024px: 64x64 latent patches
    "sdxl-64x64": BenchConfig(tokens=4096, channels=640, heads=10, text=0),  # 1024px, outer UNet stage
    "sdxl-32x32": BenchConfig(tokens=1024, channels=1280, heads=20, text=0),  # 1024px, inner UNet stage
}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _median_ms_cuda_events(fn: Callable[[], object], reps: int = 25) -> float:
    """Median of `reps` CUDA-event timings; unlike `do_bench` it does not flush L2 between calls."""
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def _make_timer(device: torch.device, min_run_time: float) -> Callable[[Callable[[], object]], float]:
    """`fn -> median ms per call`, by the device's own clock. `min_run_time` (s) applies on CPU only."""
    if device.type == "cuda":
        try:
            from triton.testing import do_bench
        except ImportError:
            do_bench = None

        def time_cuda(fn: Callable[[], object]) -> float:
            # A first call outside the timer: Triton JIT and Inductor compile would otherwise skew
            # do_bench's estimate of how many repetitions fit in its budget.
            fn()
            torch.cuda.synchronize()
            if do_bench is None:
                return _median_ms_cuda_events(fn)
            try:
                ms = do_bench(fn, quantiles=[0.5])  # triton >= 2.1: a float for one quantile
            except TypeError:
                ms = do_bench(fn)  # triton 2.0: no `quantiles`; a tuple of percentiles, median first
            return float(ms[0] if isinstance(ms, (tuple, list)) else ms)

        return time_cuda

    def time_cpu(fn: Callable[[], object]) -> float:
        # blocked_autorange's block-size estimate runs fn first, so that call is the warm-up.
        timer = benchmark.Timer("fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
        return timer.blocked_autorange(min_run_time=min_run_time).median * 1e3

    return time_cpu


def run(
    configs: Sequence[str] = tuple(CONFIGS),
    tiles: Sequence[tuple[int, int]] = ((4, 4), (8, 8)),
    *,
    ratio: float = 0.5,
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
    compile: bool = False,
    min_run_time: float = 0.5,
    seed: int = 0,
) -> list[dict]:
    """Time every op for each (config, tile); one dict per pair, times in ms.

    `dtype` defaults to bf16 on CUDA and fp32 on CPU. `compile` runs the weights, merge and unmerge
    ops (and the SDPA form, so the two forms stay comparable) through `torch.compile`; selection is
    one custom op either way.
    """
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = dtype or (torch.bfloat16 if device.type == "cuda" else torch.float32)
    time_ms = _make_timer(device, min_run_time)
    gen = torch.Generator(device=device).manual_seed(seed)
    attn_ms: dict[tuple[int, int, int], float] = {}  # both tiles give the same merged length at a ratio

    def attention(heads: int, L: int, head_dim: int) -> float:
        if (heads, L, head_dim) not in attn_ms:
            q, k, v = (torch.randn(1, heads, L, head_dim, generator=gen, device=device, dtype=dtype) for _ in range(3))
            attn_ms[heads, L, head_dim] = time_ms(lambda: F.scaled_dot_product_attention(q, k, v))
            del q, k, v
        return attn_ms[heads, L, head_dim]

    rows = []
    for name in configs:
        cfg = CONFIGS[name]
        x = torch.randn(1, cfg.tokens, cfg.channels, generator=gen, device=device, dtype=dtype)
        for tile in tiles:
            layout = TileLayout(cfg.grid, tile, ratio)
            ops = dict(weights=merge_weights, merge=merge, unmerge=unmerge, merge_sdpa=merge_sdpa, unmerge_sdpa=unmerge_sdpa)
            if compile:
                # A fresh cache per layout: each layout is a new specialisation, and sharing one cache
                # across many would hit Dynamo's recompile limit and silently fall back to eager.
                torch._dynamo.reset()
                ops = {k: torch.compile(f, dynamic=False) for k, f in ops.items()}
            dst = select_destinations(x, layout)
            w = ops["weights"](x, dst, layout)
            y = ops["merge"](x, w, layout)
            t = {
                "select": time_ms(lambda: select_destinations(x, layout)),
                "weights": time_ms(lambda: ops["weights"](x, dst, layout)),
                "merge": time_ms(lambda: ops["merge"](x, w, layout)),
                "unmerge": time_ms(lambda: ops["unmerge"](y, w, layout)),
                "merge_sdpa": time_ms(lambda: ops["merge_sdpa"](x, x, dst, layout)),
                "unmerge_sdpa": time_ms(lambda: ops["unmerge_sdpa"](y, x, dst, layout)),
            }
            L_full, L_merged = cfg.tokens + cfg.text, layout.num_merged + cfg.text
            full = attention(cfg.heads, L_full, cfg.head_dim)
            merged = attention(cfg.heads, L_merged, cfg.head_dim)
            toma = t["select"] + t["weights"] + t["merge"] + t["unmerge"]
            assign, sdpa = toma - t["select"], t["merge_sdpa"] + t["unmerge_sdpa"]
            rows.append({
                "config": name, "tile": f"{tile[0]}x{tile[1]}", "tokens": cfg.tokens, "merged": layout.num_merged,
                "attn_len_full": L_full, "attn_len_merged": L_merged,
                **{f"{k}_ms": v for k, v in t.items()},
                "attn_full_ms": full, "attn_merged_ms": merged, "toma_total_ms": toma,
                "overhead_pct": 100.0 * toma / full,
                "attn_saving_ms": full - merged,
                "net_saving_ms": full - merged - toma,
                "attn_speedup": full / merged,
                "ideal_attn_speedup": (L_full / L_merged) ** 2,  # attention FLOPs scale with L^2
                "assign_total_ms": assign, "sdpa_total_ms": sdpa, "sdpa_over_assign": sdpa / assign,
            })
        del x
    return rows


def environment(device: torch.device, dtype: torch.dtype) -> dict:
    """Device name, library versions and dtype, for the report header and the JSON log."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"CPU {_cpu_model() or platform.machine()}, {torch.get_num_threads()} threads"
    env = {"device": name, "torch": torch.__version__, "dtype": str(dtype).removeprefix("torch."), "python": platform.python_version()}
    if device.type == "cuda":
        try:
            import triton

            env["triton"] = triton.__version__
        except ImportError:
            env["triton"] = None
    return env


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            return next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), None)
    except OSError:
        return None


_COLUMNS = [  # (header, row key); times in ms
    ("config", "config"), ("tile", "tile"), ("N->M", None), ("select", "select_ms"), ("weights", "weights_ms"),
    ("merge", "merge_ms"), ("unmerge", "unmerge_ms"), ("toma", "toma_total_ms"), ("attn", "attn_full_ms"),
    ("attn_m", "attn_merged_ms"), ("ovh%", "overhead_pct"), ("saving", "attn_saving_ms"), ("net", "net_saving_ms"),
    ("x/ideal", None), ("assign", "assign_total_ms"), ("sdpa", "sdpa_total_ms"), ("sdpa/asg", "sdpa_over_assign"),
]


def _num(v: float) -> str:
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"


def format_table(rows: list[dict]) -> str:
    """Fixed-width table, one line per (config, tile), with a legend."""
    lines = ["".join(f"{h:>11}" if i > 1 else f"{h:<11}" for i, (h, _) in enumerate(_COLUMNS))]
    for r in rows:
        cells = [f"{r['config']:<11}", f"{r['tile']:<11}"]
        for h, key in _COLUMNS[2:]:
            if h == "N->M":
                cell = f"{r['tokens']}->{r['merged']}"
            elif h == "x/ideal":
                cell = f"{r['attn_speedup']:.2f}/{r['ideal_attn_speedup']:.2f}"
            else:
                cell = _num(r[key])
            cells.append(f"{cell:>11}")
        lines.append("".join(cells))
    lines.append(
        "ms per call. toma = select+weights+merge+unmerge; ovh% = toma / attn; saving = attn - attn_m; "
        "net = saving - toma;\nx/ideal = attention speed-up measured / FLOP-ideal (L/L_m)^2; "
        "assign = weights+merge+unmerge; sdpa = merge_sdpa+unmerge_sdpa."
    )
    return "\n".join(lines)


def _ratio(s: str) -> float:
    try:
        r = float(s)
    except ValueError:
        r = math.nan
    if not 0.0 <= r < 1.0:  # also rejects nan
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), got {s!r}")
    return r


def _configs(s: str) -> list[str]:
    names = [n.strip() for n in s.split(",") if n.strip()]
    bad = [n for n in names if n not in CONFIGS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown config {', '.join(bad) or repr(s)}; choose from {', '.join(CONFIGS)}")
    return names


def _tiles(s: str) -> list[tuple[int, int]]:
    out = []
    for part in s.split(","):
        h, sep, w = part.strip().lower().partition("x")
        if not (sep and h.isdigit() and w.isdigit() and int(h) >= 1 and int(w) >= 1):
            raise argparse.ArgumentTypeError(f"must be HxW tiles of positive ints, comma-separated (e.g. 4x4,8x8), got {s!r}")
        out.append((int(h), int(w)))
    return out


def _positive(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        v = math.nan
    if not 0.0 < v < math.inf:
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {s!r}")
    return v


def main(argv: list[str] | None = None) -> int:
    """CLI: print the environment, time the ops, print the table; optionally write rows to JSON."""
    p = argparse.ArgumentParser(prog="toma-fx bench ops", description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", type=_configs, default=list(CONFIGS), help=f"comma-separated subset of {', '.join(CONFIGS)}")
    p.add_argument("--tiles", type=_tiles, default=[(4, 4), (8, 8)], help="comma-separated HxW tiles (default 4x4,8x8)")
    p.add_argument("--ratio", type=_ratio, default=0.5, help="fraction of tokens merged away, in [0, 1) (default 0.5)")
    p.add_argument("--dtype", choices=list(DTYPES), help="default bf16 on CUDA, fp32 on CPU")
    p.add_argument("--device", help="cpu or cuda[:index] (default cuda if available)")
    p.add_argument("--json", metavar="PATH", help="write environment, settings and rows to this JSON file")
    p.add_argument("--compile", action="store_true", help="torch.compile weights/merge/unmerge (and the SDPA form)")
    p.add_argument("--min-run-time", type=_positive, default=0.5, help="seconds per measurement on CPU (default 0.5)")
    args = p.parse_args(argv)

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu")) if _device_ok(args.device) else None
    if device is None:
        p.error(f"argument --device: must be cpu or cuda[:index], got {args.device!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("argument --device: CUDA is not available in this torch build or machine; use --device cpu")
    for name in args.configs:  # tiles larger than a grid fail here, with the flag named, not mid-run
        for tile in args.tiles:
            try:
                TileLayout(CONFIGS[name].grid, tile, args.ratio)
            except ValueError as e:
                p.error(f"argument --tiles: {tile[0]}x{tile[1]} does not fit {name}: {e}")
    if args.json and not os.path.isdir(os.path.dirname(os.path.abspath(args.json))):
        p.error(f"argument --json: directory of {args.json!r} does not exist")
    dtype = DTYPES[args.dtype] if args.dtype else (torch.bfloat16 if device.type == "cuda" else torch.float32)

    env = environment(device, dtype)
    settings = {
        "configs": {n: {**asdict(CONFIGS[n]), "grid": CONFIGS[n].grid} for n in args.configs},
        "tiles": [f"{h}x{w}" for h, w in args.tiles], "ratio": args.ratio, "batch": 1, "tau": DEFAULT_TAU,
        "compile": args.compile,
        "timer": "triton do_bench median" if device.type == "cuda" else f"blocked_autorange median, {args.min_run_time}s",
    }
    print(f"device: {env['device']} | torch {env['torch']} | dtype {env['dtype']}")
    print(f"settings: {json.dumps(settings)}", flush=True)
    rows = run(args.configs, args.tiles, ratio=args.ratio, dtype=dtype, device=device,
               compile=args.compile, min_run_time=args.min_run_time)
    print(format_table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": env, "settings": settings, "rows": rows}, f, indent=2)
    return 0


def _device_ok(s: str | None) -> bool:
    try:
        return s is None or torch.device(s).type in ("cpu", "cuda")
    except RuntimeError:
        return False
