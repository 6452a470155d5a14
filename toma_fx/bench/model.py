"""Model benchmark: one denoiser call under `toma_backend` against the same model under plain
`torch.compile` (Inductor), in one run, next to the FLOP-ideal speedup from `toma_fx.explain`.

    toma-fx bench model --arch flux --size mid --latent 128x128 --ratio 0.5
    toma-fx bench model --arch qwen-image --size mid --grid 64x64     # any zoo entry with a mid size
    toma-fx bench model --arch wan2.1 --size mid --grid 8x32x32 --tile 2x4x4

Both compiled models are warmed up (compiled) first; then calls alternate plain / ToMA so that drift
in clock speed or cache state hits both alike. Speedup = plain median / ToMA median.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics

import torch

from toma_fx import ToMAConfig, argtypes, explain, toma_backend, zoo
from toma_fx.architectures import ARCHITECTURES, build, example_inputs
from toma_fx.bench.timing import device_and_dtype, environment, time_call

__all__ = ["add_arguments", "main", "parse", "prepare", "run"]


def prepare(arch: str, size: str, latent, batch: int, config: ToMAConfig, device, dtype):
    """The model on its device, its example inputs, `explain`'s report, and the device. `latent` is the
    latent `(H, W)` of a built-in architecture, or the token grid of a zoo entry."""
    dev, dt = device_and_dtype(device, dtype)
    if arch in ARCHITECTURES:
        model = build(arch, size).to(dev, dt)
        inputs = example_inputs(arch, model, batch=batch, latent=latent)
    else:
        model = zoo.build(arch, "published" if size == "full" else size, device=dev, dtype=dt)
        inputs = zoo.inputs(arch, model, grid=tuple(latent), batch=batch)
    report = explain(model, **inputs, config=config)
    torch._dynamo.reset()
    return model, inputs, report, dev


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
    """Median ms per call, plain and ToMA, the measured and FLOP-ideal speedups, and the regions."""
    config = config or ToMAConfig()
    model, inputs, report, dev = prepare(arch, size, latent, batch, config, device, dtype)
    modes = {"mode": mode} if compiler == "inductor" else {}
    plain = torch.compile(model, backend=compiler, fullgraph=True, **modes)
    ours = torch.compile(
        model, backend=toma_backend.configure(config, inner=compiler), fullgraph=True, **modes
    )
    timings: dict[str, list[float]] = {"plain": [], "toma": []}
    with torch.no_grad():
        for fn in (plain, ours):  # compile and warm up
            fn(**inputs)
            fn(**inputs)
        for _ in range(repeats):
            for name, fn in (("plain", plain), ("toma", ours)):
                timings[name].append(time_call(functools.partial(fn, **inputs), dev))
    plain_ms, toma_ms = (statistics.median(timings[k]) for k in ("plain", "toma"))
    return {
        "arch": arch,
        "size": size,
        "latent": list(latent),
        "batch": batch,
        "config": config.to_dict(),
        "plain_ms": round(plain_ms, 2),
        "toma_ms": round(toma_ms, 2),
        "speedup": round(plain_ms / toma_ms, 3),
        "flop_ideal_speedup": round(report.speedup, 3),
        "share_of_ideal": round((plain_ms / toma_ms - 1) / (report.speedup - 1), 3)
        if report.speedup > 1
        else None,
        "regions": report.counts(),
        "gflop_plain": round(report.flops_before / 1e9, 2),
        "gflop_toma": round(report.flops_after / 1e9, 2),
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags every whole-model benchmark takes."""
    mids = [name for name, e in zoo.DENOISERS.items() if e.mid is not None]
    p.add_argument("--arch", choices=[*sorted(ARCHITECTURES), *mids], default="flux")
    p.add_argument("--size", choices=["tiny", "mid", "full"], default="mid")
    p.add_argument(
        "--latent", type=argtypes.tile, default=(128, 128), help="latent HxW (pixels / 8), e.g. 128x128"
    )
    p.add_argument(
        "--grid", type=argtypes.sizes, help=f"token grid of a zoo entry ({', '.join(mids)}), e.g. 64x64"
    )
    p.add_argument("--batch", type=argtypes.count, default=1)
    p.add_argument("--ratio", type=argtypes.ratio, default=0.5)
    p.add_argument("--tile", type=argtypes.sizes, default=ToMAConfig.tile, help=argtypes.TILE_HELP)
    p.add_argument("--min-tokens", type=argtypes.count, default=1024)
    p.add_argument("--repeats", type=argtypes.count, default=10)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default=None)
    p.add_argument("--mode", default=None, help="torch.compile mode for every compiled model")
    argtypes.compiler_flag(p)
    p.add_argument("--json", metavar="PATH", help="write environment and result to this JSON file")


def parse(p: argparse.ArgumentParser, argv: list[str] | None) -> tuple[argparse.Namespace, dict, dict]:
    """Parsed flags, the keyword arguments of `run` (after arch and size), and the environment, which
    is printed."""
    args = p.parse_args(argv)
    dtype = getattr(torch, args.dtype) if args.dtype else None
    config = ToMAConfig(ratio=args.ratio, tile=args.tile, min_tokens=args.min_tokens)
    dev, dt = device_and_dtype(args.device, dtype)
    env = {
        **environment(dev, dt),
        "timer": f"wall clock per call, median of {args.repeats} alternating calls",
    }
    print(" | ".join(f"{k}: {v}" for k, v in env.items()))
    if (args.arch in ARCHITECTURES) == (args.grid is not None):
        p.error("--grid is for zoo entries, --latent for the built-in architectures")
    kwargs = dict(
        latent=args.grid or args.latent, batch=args.batch, config=config, device=args.device, dtype=dtype,
        repeats=args.repeats, mode=args.mode, compiler=args.compiler,
    )  # fmt: skip
    return args, kwargs, env


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="toma-fx bench model", description=__doc__.split("\n\n")[0])
    add_arguments(p)
    args, kwargs, env = parse(p, argv)
    r = run(args.arch, args.size, **kwargs)
    what, sizes = ("grid", args.grid) if args.grid else ("latent", args.latent)
    shape = f"{what} {'x'.join(map(str, sizes))} batch {r['batch']}, tile {'x'.join(map(str, args.tile))}, "
    shape += f"ratio {args.ratio}"
    print(f"{r['arch']} {r['size']} {shape}: plain {r['plain_ms']} ms, ToMA {r['toma_ms']} ms")
    print(
        f"speedup {r['speedup']}x, FLOP-ideal {r['flop_ideal_speedup']}x "
        f"({r['gflop_plain']} -> {r['gflop_toma']} GFLOP), regions {r['regions']}"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": env, "result": r}, f, indent=2)
    return 0
