"""What the pass does on every denoiser of the zoo: regions merged per kind, their grid and its source,
what is skipped and why, and the FLOP-ideal speedup. `docs/coverage.md` is this table
(`toma-fx coverage`), and the coverage tests assert it on the tiny configs.

    row = cover("flux2")                       # tiny, random weights, a 16x12 token grid
    row = cover("wan2.1", size="published", grid=(21, 30, 52), device="meta")   # FLOPs only

A model Dynamo cannot trace as one graph is explained as `torch.compile` would run it, graph by graph,
with the latent grid of the call given to the graphs after a break (as `toma_fx.apply` gives it).
"""

from __future__ import annotations

import functools
import math
import multiprocessing
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import torch
import torch.fx.experimental._config

from toma_fx import argtypes, zoo
from toma_fx.config import ToMAConfig
from toma_fx.explain import Report, explain

__all__ = ["Coverage", "cover", "markdown"]


@dataclass
class Coverage:
    """One denoiser under the pass.

    `misplaced` lists regions whose merged rows are not the image's (a row count or grid other than
    the image's, or its per-frame grid): it must always be empty, since text rows are never merged."""

    name: str
    cls: str
    grid: tuple[int, ...]
    fullgraph: bool
    graphs: int
    counts: dict[str, int]
    grids: list[str]
    skipped: list[tuple[str, str]]
    speedup: float
    errors: list[str]
    misplaced: list[str] = field(default_factory=list)


TINY_CONFIG = ToMAConfig(min_tokens=64, tile=(4, 4))
"""What the matrix merges at tiny size: token sets of 64 and more (a 16x12 grid and its UNet levels),
each frame tiled on its own. Two-frame tiles (the default) cost more than the cross-attention and MLP of
the tiny video models save at their widths, so the FLOP check would skip those regions and the matrix
would no longer show whether the pass finds them; at published sizes the default config is used."""


def cover(
    name: str,
    *,
    size: str = "tiny",
    grid: tuple[int, ...] | None = None,
    batch: int = 1,
    config: ToMAConfig | None = None,
    device="cpu",
    dtype=torch.float32,
) -> Coverage:
    """Build zoo entry `name` at `size`, call it on a `grid` of tokens and explain what the pass does."""
    entry = zoo.DENOISERS[name]
    grid = zoo.fitted_grid(name, tuple(grid or ((3, 16, 12) if entry.video else (16, 12))))
    config = config or TINY_CONFIG
    model = zoo.build(name, size, device=device, dtype=dtype)
    inputs = zoo.inputs(name, model, grid=grid, batch=batch)
    fullgraph, report = True, None
    try:
        report = explain(model, **inputs, config=config, fullgraph=True, call_grid=_meta_grid(grid, device))
    except (torch._dynamo.exc.Unsupported, torch._dynamo.exc.UserError):
        fullgraph = False
        report = explain(model, **inputs, config=config, call_grid=grid)
    return Coverage(
        name=name,
        cls=entry.cls,
        grid=grid,
        fullgraph=fullgraph,
        graphs=report.graphs,
        counts=report.counts(),
        grids=sorted({r.grid for r in report.regions}),
        skipped=sorted((s.kind, s.why) for s in report.skipped),
        speedup=report.speedup,
        errors=report.errors,
        misplaced=_misplaced(report, grid),
    )


def _meta_grid(grid, device):
    """On the meta device position ids hold no values: the call's grid stands in for them."""
    return grid if torch.device(device).type == "meta" else None


def _misplaced(report: Report, grid: tuple[int, ...]) -> list[str]:
    images = {tuple(grid), tuple(grid[1:])} if len(grid) == 3 else {tuple(grid)}
    out = []
    for r in report.regions:
        shape = tuple(int(s) for s in r.grid.split(" ")[0].split("x"))
        if shape not in images or r.tokens != math.prod(shape):
            out.append(f"{r.path}: {r.tokens} rows on {r.grid}, image {'x'.join(map(str, grid))}")
    return out


def markdown(rows: list[Coverage], speedups: dict[str, dict[str, float]]) -> str:
    """The coverage table: one line a class, with the FLOP-ideal speedups measured at other sizes
    (`speedups[name][label]`)."""
    labels = list(dict.fromkeys(label for per in speedups.values() for label in per))
    head = ["class", "kinds merged", "grid (source)", *(f"FLOP-ideal {label}" for label in labels), "skipped"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for row in rows:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(row.counts.items())) or "none"
        skips = "; ".join(f"{k}: {why} ({n}x)" for (k, why), n in Counter(row.skipped).items()) or ""
        cells = [
            f"{row.cls} (`{row.name}`)",
            kinds + ("" if row.fullgraph else f" ({row.graphs} graphs)"),
            ", ".join(row.grids) or "n/a",
            *(_ratio(speedups.get(row.name, {}).get(label)) for label in labels),
            skips.replace("|", "/"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _ratio(speedup: float | None) -> str:
    return "n/a" if speedup is None else f"{speedup:.2f}x"


def main(argv: list[str] | None = None) -> int:
    """`toma-fx coverage`: the table of `docs/coverage.md`, measured now."""
    import argparse
    from pathlib import Path

    p = argparse.ArgumentParser(prog="toma-fx coverage", description=main.__doc__)
    p.add_argument("names", nargs="*", help="zoo entries (default: all)")
    p.add_argument("--out", type=Path, help="write the Markdown table here (default: print it)")
    p.add_argument("--no-published", action="store_true", help="skip the FLOP counts at published sizes")
    p.add_argument("--jobs", type=argtypes.count, default=1, help="entries measured in parallel processes")
    args = p.parse_args(argv)
    names = args.names or list(zoo.DENOISERS)
    unknown = sorted(set(names) - set(zoo.DENOISERS))
    if unknown:
        p.error(f"unknown zoo entries {unknown}; entries: {', '.join(zoo.DENOISERS)}")
    measure = functools.partial(_measure, published=not args.no_published)
    # Tracing is single-threaded Python: one process per core measures the zoo that many times faster.
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        measured = list(pool.map(measure, names)) if args.jobs > 1 else list(map(measure, names))
    rows = [row for row, _ in measured]
    speedups = {row.name: per for row, per in measured if per}
    table = markdown(rows, speedups)
    if args.out:
        args.out.write_text(args.out.read_text().split(_TABLE_MARK)[0] + _TABLE_MARK + "\n\n" + table + "\n")
    else:
        print(table)
    return 0


def _measure(name: str, *, published: bool) -> tuple[Coverage, dict[str, float]]:
    """The tiny row of entry `name`, and its FLOP-ideal speedups at the published grids."""
    import sys

    row = cover(name, batch=2)
    speedups = {}
    for label, grid in (published_grids(name) if published else {}).items():
        # Meta tensors hold no values: a data-dependent op (`nonzero` of a mask) is taken to keep every
        # element, as the all-ones masks of these calls do. What still fails to trace is n/a, with why.
        try:
            with torch.fx.experimental._config.patch(meta_nonzero_assume_all_nonzero=True):
                counted = cover(name, size="published", grid=grid, device="meta", config=ToMAConfig())
            speedups[label] = counted.speedup
        except Exception as e:
            speedups[label] = None
            print(f"{name} at {label} size: not counted, {type(e).__name__}: {str(e)[:200]}", file=sys.stderr)
    print(f"{name}: {row.counts}", file=sys.stderr)
    return row, speedups


_TABLE_MARK = "<!-- table: toma-fx coverage --out docs/coverage.md -->"
_WAN_720P = (21, 45, 80)  # 1280 x 720 x 81 frames: a 21 x 90 x 160 latent, 1x2x2 patches


def published_grids(name: str) -> dict[str, tuple[int, ...]]:
    """The token grids the FLOP-ideal speedup is reported at: the published resolution (Wan also at
    720p)."""
    entry = zoo.DENOISERS[name]
    grids = {"published": zoo.fitted_grid(name, entry.published_grid)}
    if name.startswith("wan2.1") or name == "skyreels-v2":
        grids["720p"] = _WAN_720P
    return grids
