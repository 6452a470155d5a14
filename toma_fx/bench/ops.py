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

    toma-fx bench ops --configs sdxl-32x32
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from toma_fx import argtypes
from toma_fx.bench.timing import device_and_dtype, environment, make_timer
from toma_fx.ops import (
    DEFAULT_TAU,
    TileLayout,
    merge,
    merge_sdpa,
    merge_weights,
    select_destinations,
    unmerge,
    unmerge_sdpa,
)

__all__ = ["CONFIGS", "BenchConfig", "format_table", "main", "run"]


@dataclass(frozen=True)
class BenchConfig:
    """One attention site: `tokens` image tokens on a square grid, `channels = heads * head_dim`, plus
    `text` tokens joined to them in attention (Flux's joint attention), which are never merged."""

    tokens: int
    channels: int
    heads: int
    text: int

    @property
    def grid(self) -> tuple[int, int]:
        return math.isqrt(self.tokens), math.isqrt(self.tokens)


CONFIGS = {
    "flux-1024": BenchConfig(tokens=4096, channels=3072, heads=24, text=512),  # 1024px, 64x64 latent patches
    "sdxl-64x64": BenchConfig(tokens=4096, channels=640, heads=10, text=0),  # 1024px, outer UNet stage
    "sdxl-32x32": BenchConfig(tokens=1024, channels=1280, heads=20, text=0),  # 1024px, inner UNet stage
}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def run(
    configs: Sequence[str] = tuple(CONFIGS),
    tiles: Sequence[tuple[int, int]] = ((4, 4), (8, 8)),
    *,
    ratio: float = 0.5,
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
    compile: bool = False,
    min_run_time: float = 1.0,
    seed: int = 0,
) -> list[dict]:
    """Time every op for each (config, tile), batch 1: one dict per pair, times in ms.

    `dtype` defaults to bf16 on CUDA and fp32 on CPU. `compile` runs weights, merge and unmerge (and
    the SDPA form, so the two forms stay comparable) through `torch.compile`; selection is one custom
    op either way.
    """
    device, dtype = device_and_dtype(device, dtype)
    time_ms, _ = make_timer(device, min_run_time)
    gen = torch.Generator(device=device).manual_seed(seed)
    attn_ms: dict[tuple[int, int, int], float] = {}  # tiles often share a merged length: time it once

    def attention(heads: int, L: int, head_dim: int) -> float:
        if (heads, L, head_dim) not in attn_ms:
            q, k, v = torch.randn(3, 1, heads, L, head_dim, generator=gen, device=device, dtype=dtype)
            attn_ms[heads, L, head_dim] = time_ms(lambda: F.scaled_dot_product_attention(q, k, v))
        return attn_ms[heads, L, head_dim]

    rows = []
    for name in configs:
        cfg = CONFIGS[name]
        x = torch.randn(1, cfg.tokens, cfg.channels, generator=gen, device=device, dtype=dtype)
        for tile in tiles:
            layout = TileLayout(cfg.grid, tile, ratio)
            ops = dict(
                weights=merge_weights,
                merge=merge,
                unmerge=unmerge,
                merge_sdpa=merge_sdpa,
                unmerge_sdpa=unmerge_sdpa,
            )
            if compile:
                # A fresh cache per layout: every layout is a new specialisation, and one shared cache
                # would reach Dynamo's recompile limit and silently fall back to eager.
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
            L, Lm, head_dim = cfg.tokens + cfg.text, layout.num_merged + cfg.text, cfg.channels // cfg.heads
            full, merged = attention(cfg.heads, L, head_dim), attention(cfg.heads, Lm, head_dim)
            toma = t["select"] + t["weights"] + t["merge"] + t["unmerge"]
            assign, sdpa = toma - t["select"], t["merge_sdpa"] + t["unmerge_sdpa"]
            rows.append(
                {
                    "config": name,
                    "tile": f"{tile[0]}x{tile[1]}",
                    "tokens": cfg.tokens,
                    "merged": layout.num_merged,
                    "attn_len_full": L,
                    "attn_len_merged": Lm,
                    **{f"{k}_ms": v for k, v in t.items()},
                    "attn_full_ms": full,
                    "attn_merged_ms": merged,
                    "toma_total_ms": toma,
                    "overhead_pct": 100.0 * toma / full,
                    "attn_saving_ms": full - merged,
                    "net_saving_ms": full - merged - toma,
                    "attn_speedup": full / merged,
                    "ideal_attn_speedup": (L / Lm) ** 2,  # attention FLOPs grow as L^2
                    "assign_total_ms": assign,
                    "sdpa_total_ms": sdpa,
                    "sdpa_over_assign": sdpa / assign,
                }
            )
    return rows


_COLUMNS: list[tuple[str, str | Callable[[dict], str]]] = [  # (header, row key or formatter)
    ("N->M", lambda r: f"{r['tokens']}->{r['merged']}"),
    ("select", "select_ms"),
    ("weights", "weights_ms"),
    ("merge", "merge_ms"),
    ("unmerge", "unmerge_ms"),
    ("toma", "toma_total_ms"),
    ("attn", "attn_full_ms"),
    ("attn_m", "attn_merged_ms"),
    ("ovh%", "overhead_pct"),
    ("saving", "attn_saving_ms"),
    ("net", "net_saving_ms"),
    ("x/ideal", lambda r: f"{r['attn_speedup']:.2f}/{r['ideal_attn_speedup']:.2f}"),
    ("assign", "assign_total_ms"),
    ("sdpa", "sdpa_total_ms"),
    ("sdpa/asg", "sdpa_over_assign"),
]


def format_table(rows: list[dict]) -> str:
    """Fixed-width table, one line per (config, tile), and a legend."""

    def cell(r: dict, col) -> str:
        if callable(col):
            return col(r)
        v = r[col]
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"  # 3 significant digits, no exponents

    lines = [f"{'config':<11}{'tile':<6}" + "".join(f"{h:>10}" for h, _ in _COLUMNS)]
    for r in rows:
        lines.append(f"{r['config']:<11}{r['tile']:<6}" + "".join(f"{cell(r, c):>10}" for _, c in _COLUMNS))
    lines.append(
        "ms per call. toma = select+weights+merge+unmerge; ovh% = toma / attn; saving = attn - attn_m;\n"
        "net = saving - toma; x/ideal = attention speed-up measured / FLOP-ideal (L/L_m)^2;\n"
        "assign = weights+merge+unmerge (assignment form); sdpa = merge_sdpa+unmerge_sdpa (SDPA form)."
    )
    return "\n".join(lines)


def _device(s: str) -> torch.device:
    try:
        d = torch.device(s)
    except (RuntimeError, ValueError):
        d = None
    if d is None or d.type not in ("cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"must be cpu or cuda[:index], got {s!r}")
    if d.type == "cuda" and (d.index or 0) >= torch.cuda.device_count():
        raise argparse.ArgumentTypeError(
            f"{s} is not available: {torch.cuda.device_count()} CUDA devices here"
        )
    return d


def _configs(s: str) -> list[str]:
    names = [n.strip() for n in s.split(",") if n.strip()]
    bad = [n for n in names if n not in CONFIGS]
    if bad or not names:
        known = ", ".join(CONFIGS)
        raise argparse.ArgumentTypeError(f"unknown config {', '.join(bad) or repr(s)}; choose from {known}")
    return names


def main(argv: list[str] | None = None) -> int:
    """CLI: print the environment and settings, time the ops, print the table; optionally write JSON."""
    p = argparse.ArgumentParser(prog="toma-fx bench ops", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--configs",
        type=_configs,
        default=list(CONFIGS),
        help=f"comma-separated subset of {', '.join(CONFIGS)} (default all)",
    )
    p.add_argument(
        "--tiles", type=argtypes.tiles, default=[(4, 4), (8, 8)], help="HxW,HxW,... (default 4x4,8x8)"
    )
    p.add_argument(
        "--ratio",
        type=argtypes.ratio,
        default=0.5,
        help="fraction of tokens merged away, in [0, 1) (default 0.5)",
    )
    p.add_argument("--dtype", choices=list(DTYPES), help="default bf16 on CUDA, fp32 on CPU")
    p.add_argument("--device", type=_device, help="cpu or cuda[:index] (default cuda if available)")
    p.add_argument("--json", metavar="PATH", help="write environment, settings and rows to this JSON file")
    p.add_argument(
        "--compile", action="store_true", help="torch.compile weights, merge, unmerge and the SDPA form"
    )
    p.add_argument(
        "--min-run-time",
        type=argtypes.positive,
        default=1.0,
        help="seconds of repetitions per measurement on CPU (default 1.0)",
    )
    args = p.parse_args(argv)
    for name in args.configs:  # a tile larger than a grid fails here, naming the flag, not mid-run
        for tile in args.tiles:
            try:
                TileLayout(CONFIGS[name].grid, tile, args.ratio)
            except ValueError as e:
                p.error(f"argument --tiles: {tile[0]}x{tile[1]} does not fit {name}: {e}")
    if args.json and not os.path.isdir(os.path.dirname(os.path.abspath(args.json))):
        p.error(f"argument --json: the directory of {args.json!r} does not exist")

    device, dtype = device_and_dtype(args.device, DTYPES.get(args.dtype))
    env = environment(device, dtype, args.min_run_time)
    settings = {
        "configs": {n: {**asdict(CONFIGS[n]), "grid": CONFIGS[n].grid} for n in args.configs},
        "tiles": [f"{h}x{w}" for h, w in args.tiles],
        "ratio": args.ratio,
        "batch": 1,
        "tau": DEFAULT_TAU,
        "compile": args.compile,
    }
    print(f"device: {env['device']} | torch {env['torch']} | dtype {env['dtype']} | timer: {env['timer']}")
    print(f"settings: {json.dumps(settings)}", flush=True)
    rows = run(
        args.configs,
        args.tiles,
        ratio=args.ratio,
        dtype=dtype,
        device=device,
        compile=args.compile,
        min_run_time=args.min_run_time,
    )
    print(format_table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": env, "settings": settings, "rows": rows}, f, indent=2)
    return 0
