"""Step benchmark: what each kind of scheduled step costs, beside plain torch.compile, in one run.

    toma-fx bench steps --arch flux --size mid --latent 128x128

One model compiled three ways, all with Inductor:

    plain     torch.compile
    toma      toma_backend with warmup_steps=1, select_every=2: step 0 runs off, step 1 selects, step 2
              reuses, so one compiled model times all three kinds of step
    no-select the merged graph with the selection op swapped for fixed destinations (every other token
              of a tile): a merged step with no selection at all, the floor a reuse step should reach

Calls alternate (plain, off, select, reuse, no-select) so that drift hits all alike; medians are
reported. The first calls compile: `toma` compiles every variant its schedule needs on its first call.
Selection overhead = (select - reuse) / select: the share of a merged step that reuse saves.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics

import torch

import toma_fx
from toma_fx import ToMAConfig, toma_backend
from toma_fx.bench.choosers import fixed_destinations, swap_selection
from toma_fx.bench.model import add_arguments, parse, prepare
from toma_fx.bench.timing import time_call

__all__ = ["main", "run"]

KINDS = ("plain", "off", "select", "reuse", "no-select")


def _without_selection(mode, compiler: str):
    """An inner compiler: the rewritten graph with `fixed_destinations` in place of the selection op."""

    def compile_(gm, example_inputs):
        from torch._inductor import list_mode_options
        from torch._inductor.compile_fx import compile_fx

        if compiler != "inductor":
            return torch._dynamo.lookup_backend(compiler)(gm, example_inputs)
        return compile_fx(gm, example_inputs, config_patches=list_mode_options(mode) if mode else None)

    return swap_selection(fixed_destinations, compile_)


def run(
    arch: str,
    size: str = "mid",
    *,
    latent: tuple[int, int] = (128, 128),
    batch: int = 1,
    config: ToMAConfig | None = None,
    device: str | None = None,
    dtype: torch.dtype | None = None,
    repeats: int = 10,
    mode: str | None = None,
    compiler: str = "inductor",
) -> dict:
    """Median ms per call of each kind of step, with speedups over plain and the selection overhead."""
    config = (config or ToMAConfig()).replace(warmup_steps=1, merge_every=1, select_every=2)
    model, inputs, report, dev = prepare(arch, size, latent, batch, config, device, dtype)
    modes = {"mode": mode} if compiler == "inductor" else {}
    plain = torch.compile(model, backend=compiler, fullgraph=True, **modes)
    ours = torch.compile(
        model, backend=toma_backend.configure(config, inner=compiler), fullgraph=True, **modes
    )
    unscheduled = config.replace(warmup_steps=0, select_every=1)
    fixed_backend = toma_backend.configure(unscheduled, inner=_without_selection(mode, compiler))
    fixed = torch.compile(model, backend=fixed_backend, fullgraph=True)

    def at_step(i):
        with toma_fx.step(i):
            ours(**inputs)

    calls = {
        "plain": functools.partial(plain, **inputs),
        "off": functools.partial(at_step, 0),
        "select": functools.partial(at_step, 1),
        "reuse": functools.partial(at_step, 2),
        "no-select": functools.partial(fixed, **inputs),
    }
    timings: dict[str, list[float]] = {k: [] for k in KINDS}
    with torch.no_grad():
        first = {kind: time_call(calls[kind], dev) / 1e3 for kind in KINDS}  # "off" compiles every variant
        for fn in calls.values():  # warm up
            fn()
        for _ in range(repeats):
            for kind in KINDS:
                timings[kind].append(time_call(calls[kind], dev))
    ms = {k: statistics.median(v) for k, v in timings.items()}
    return {
        "arch": arch,
        "size": size,
        "latent": list(latent),
        "batch": batch,
        "config": config.to_dict(),
        "ms": {k: round(v, 2) for k, v in ms.items()},
        "speedup": {k: round(ms["plain"] / ms[k], 3) for k in KINDS[1:]},
        "flop_ideal_speedup": round(report.speedup, 3),
        "compile_s": {
            "plain": round(first["plain"], 1),
            "toma": round(first["off"] + first["select"] + first["reuse"], 1),
            "no-select": round(first["no-select"], 1),
        },
        "selection_share": round((ms["select"] - ms["reuse"]) / ms["select"], 4),
        "reuse_over_no_select": round(ms["reuse"] / ms["no-select"], 3),
        "regions": report.counts(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="toma-fx bench steps", description=__doc__.split("\n\n")[0])
    add_arguments(p)
    p.add_argument("--reuse-weights", action="store_true", help="reuse steps also reuse merge weights")
    args, kwargs, env = parse(p, argv)
    kwargs["config"] = kwargs["config"].replace(reuse_weights=args.reuse_weights)
    r = run(args.arch, args.size, **kwargs)
    h, w = args.latent
    print(f"{r['arch']} {r['size']} latent {h}x{w} batch {r['batch']}, ratio {args.ratio}")
    print("step       ms        speedup vs plain")
    for kind in KINDS:
        speedup = "" if kind == "plain" else f"{r['speedup'][kind]}x"
        print(f"{kind:<10} {r['ms'][kind]:<9} {speedup}")
    print("first calls (compile), s: " + ", ".join(f"{k} {v}" for k, v in r["compile_s"].items()))
    print(
        f"FLOP-ideal {r['flop_ideal_speedup']}x; selection {r['selection_share']:.1%} of a select step; "
        f"reuse / no-select {r['reuse_over_no_select']}"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": env, "result": r}, f, indent=2)
    return 0
