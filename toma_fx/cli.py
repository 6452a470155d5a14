"""The `toma-fx` command line.

    toma-fx demo [...]              ToMA vs plain torch.compile on SDXL-like and Flux-like pipelines
    toma-fx generate [...]          one generation with ToMA, with timings, saved as a PNG
    toma-fx explain [...]           what the compiler pass merges in a model, and the FLOP-ideal speedup
    toma-fx coverage [...]          what it merges in every denoiser of diffusers (docs/coverage.md)
    toma-fx bench [...]             eager, torch.compile, ToMA at several ratios and tomesd on one pipeline
    toma-fx bench ops|model|steps|dispatch|photos|fidelity|gpu [...]   narrower benchmarks (`--help`)
    toma-fx train-proxy [...]       train a proxy denoiser on real photographs (toma_fx.proxies)

Built-in models are built from their configs with random weights (no downloads); `--model PATH` takes a
diffusers pipeline saved in a local folder. User errors print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from toma_fx import argtypes
from toma_fx.config import ToMAConfig

BENCHES = ("pipeline", "ops", "model", "steps", "dispatch", "photos", "fidelity", "gpu")
ARCHS = ("sdxl", "flux", "sd3", "pixart")


def _config_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--ratio", type=argtypes.ratio, default=0.5, help="fraction of image tokens removed, [0, 1)"
    )
    p.add_argument("--tile", type=argtypes.sizes, help=argtypes.TILE_HELP)
    p.add_argument(
        "--min-tokens", type=argtypes.count, default=1024, help="merge token sets of at least this"
    )
    p.add_argument("--select-every", type=argtypes.count, default=1, help="select destinations every n steps")
    argtypes.method_flags(p)
    argtypes.compiler_flag(p)


def _model_flags(p: argparse.ArgumentParser, *, default_arch: str | None) -> None:
    p.add_argument("--arch", choices=ARCHS, default=default_arch, help="a built-in architecture")
    p.add_argument(
        "--size", choices=["tiny", "mid", "full"], default=None, help="default: full on a GPU, else mid"
    )
    p.add_argument("--model", metavar="PATH", help="a diffusers pipeline saved in a local folder")
    p.add_argument(
        "--resolution", type=argtypes.tile, default=None, help="image HxW in pixels (default 512x512)"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="toma-fx", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="ToMA vs plain torch.compile, end to end (no downloads)")
    demo.add_argument(
        "--out", type=Path, default=Path("toma-fx-out"), help="folder for report.json and the PNG"
    )
    demo.add_argument("--models", nargs="+", choices=ARCHS, default=["sdxl", "flux"])
    demo.add_argument(
        "--size", choices=["tiny", "mid", "full"], default=None, help="default: full on a GPU, else mid"
    )
    demo.add_argument("--model", metavar="PATH", help="a diffusers pipeline saved in a local folder")
    demo.add_argument("--prompt", action="append", default=[], help="prompt for --model (repeatable)")
    demo.add_argument("--resolution", type=argtypes.tile, default=None, help="image HxW in pixels")
    demo.add_argument("--steps", type=argtypes.count, default=8)
    demo.add_argument("--batch", type=argtypes.count, default=1)
    demo.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    demo.add_argument("--whole", action="store_true", help="compile whole denoisers, not their blocks")
    demo.add_argument("--proxies", nargs="*", choices=["flux", "sdxl"], default=["flux", "sdxl"],
                      help="trained proxies to draw samples from (none: skip them)")  # fmt: skip
    _config_flags(demo)

    gen = sub.add_parser("generate", help="one generation with ToMA, with timings")
    _model_flags(gen, default_arch="flux")
    gen.add_argument("--prompt", default="a photograph of a red fox in the snow", help="for --model")
    gen.add_argument("--steps", type=argtypes.count, default=8)
    gen.add_argument("--out", type=Path, default=Path("toma-fx-out/image.png"))
    gen.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    _config_flags(gen)

    exp = sub.add_parser("explain", help="regions merged and skipped, FLOP-ideal speedup, graph diff")
    _model_flags(exp, default_arch="flux")
    exp.add_argument("--diff", action="store_true", help="also print the graph diff")
    _config_flags(exp)

    bench = sub.add_parser("bench", help="benchmarks", add_help=False)
    bench.add_argument("what", choices=BENCHES, help=" | ".join(BENCHES))
    sub.add_parser("coverage", help="regions merged in every denoiser of diffusers", add_help=False)
    sub.add_parser("train-proxy", help="train a proxy denoiser on real photographs", add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"] and (len(argv) == 1 or argv[1].startswith("-")):
        argv.insert(1, "pipeline")  # `toma-fx bench [flags]` is the pipeline benchmark
    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    if args.command == "bench":
        import importlib

        return importlib.import_module(f"toma_fx.bench.{args.what}").main(rest)
    if args.command == "coverage":
        from toma_fx.coverage import main as coverage

        return coverage(rest)
    if args.command == "train-proxy":
        from toma_fx.proxies.train import main as train_proxy

        return train_proxy(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        return {"demo": _demo, "generate": _generate, "explain": _explain}[args.command](args)
    except ValueError as e:  # bad model path, tile larger than the grid, nothing to merge, ...
        print(f"toma-fx {args.command}: error: {e}", file=sys.stderr)
        return 2


def _config(args):
    tile = {} if args.tile is None else {"tile": args.tile}
    return ToMAConfig(ratio=args.ratio, min_tokens=args.min_tokens, select_every=args.select_every,
                      **argtypes.method_config(args), **tile)  # fmt: skip


def _resolution(args, size: str) -> tuple[int, int]:
    h, w = args.resolution or ((1024, 1024) if size == "full" else (512, 512))
    if h % 16 or w % 16:
        raise ValueError(f"resolution must be a multiple of 16 on each side, got {h}x{w}")
    grid = (h // 16, w // 16)  # tokens of the largest merged level: latent / 2
    th, tw = _config(args).tile[-2:]  # images use the tile's rows and columns
    if th > grid[0] or tw > grid[1]:
        raise ValueError(f"tile {th}x{tw} is larger than the {grid[0]}x{grid[1]} token grid at {h}x{w}")
    return h, w


def _size(args) -> str:
    import torch

    return args.size or ("full" if torch.cuda.is_available() else "mid")


def _demo(args) -> int:
    from toma_fx.demo import format_table, run_demo

    size = _size(args)
    report = run_demo(
        args.out, models=tuple(args.models), size=size, resolution=_resolution(args, size), steps=args.steps,
        batch=args.batch, config=_config(args), model_path=args.model, prompts=tuple(args.prompt),
        device=args.device, regional=not args.whole, compiler=args.compiler, proxies=tuple(args.proxies),
    )  # fmt: skip
    env, (h, w) = report["environment"], report["resolution"]
    print(f"{env['device']}, torch {env['torch']}, {env['dtype']}; {report['steps']} steps at {h}x{w}, "
          f"batch {report['batch']}, ratio {args.ratio}")  # fmt: skip
    print(format_table(report["rows"]))
    written = [args.out / "report.json"]
    if args.model:
        written.append(args.out / "comparison.png")
    elif "proxies" in report:
        from toma_fx.bench import fidelity

        print(f"\nTrained proxies, {report['steps']} steps, against the unmerged model:\n")
        print(fidelity.format_table(report))
        written += [args.out / "proxies" / f"samples_{name}.png" for name in report["proxies"]]
    print(f"\nwrote {', '.join(map(str, written))}")
    return 0


def _pipeline(args, device="cpu", dtype=None):
    import torch

    from toma_fx.pipelines import open_pipeline

    prompts = (args.prompt,) if getattr(args, "prompt", None) else ()
    source = args.model or args.arch
    return open_pipeline(source, _size(args), prompts=prompts, device=device, dtype=dtype or torch.float32)


def _generate(args) -> int:
    import time

    import torch

    from toma_fx.bench.timing import device_and_dtype
    from toma_fx.pipelines import apply

    dev, dtype = device_and_dtype(args.device, None)
    h, w = _resolution(args, _size(args))
    pipe, _, inputs = _pipeline(args, dev, dtype)
    apply(pipe, _config(args), inner=args.compiler)
    pipe.set_progress_bar_config(disable=False)
    times = []
    for _ in range(2):  # the first call compiles
        start = time.perf_counter()
        with torch.no_grad():
            image = pipe(**inputs, height=h, width=w, num_inference_steps=args.steps).images[0]
        times.append(time.perf_counter() - start)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    image.save(args.out)
    per_step = times[1] / args.steps * 1e3
    print(f"{h}x{w}, {args.steps} steps: first call (compiles) {times[0]:.2f} s, then {times[1]:.2f} s "
          f"end to end ({per_step:.1f} ms per step, VAE included); wrote {args.out}")  # fmt: skip
    return 0


def _explain(args) -> int:
    from toma_fx.architectures import example_inputs
    from toma_fx.explain import explain
    from toma_fx.pipelines import ARCH_OF_PIPELINE, denoiser_of

    h, w = _resolution(args, _size(args))
    pipe, arch, _ = _pipeline(args)
    if arch is None:
        raise ValueError(f"{type(pipe).__name__} is not one of {sorted(ARCH_OF_PIPELINE)}")
    denoiser = denoiser_of(pipe)
    latent = (h // pipe.vae_scale_factor, w // pipe.vae_scale_factor)
    report = explain(denoiser, **example_inputs(arch, denoiser, latent=latent), config=_config(args))
    print(report)
    if args.diff:
        print(report.diff)
    if not report.regions:
        raise ValueError(f"nothing to merge in {arch} at {h}x{w}")
    return 0
