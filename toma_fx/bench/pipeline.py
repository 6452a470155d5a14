"""Pipeline benchmark: eager, plain torch.compile, ToMA at several ratios, tomesd and ToDo, side by side
on one pipeline in one process, with fidelity against the plain compile.

    toma-fx bench                                  # SDXL-like; the full architecture at 1024x1024 on a GPU
    toma-fx bench --arch flux --ratios 0.25 0.5 0.75 --select-every 3
    toma-fx bench --model PATH --prompt "a red fox" --dino DINO_PATH --clip CLIP_PATH

Every method runs on the same pipeline (same weights) from the same seed and inputs, twice: the first
generation compiles, the second is measured. The baseline is plain torch.compile (Inductor), compiled
the way ToMA is (regionally unless `--whole`). Per method: median step latency, end-to-end latency,
compile time (first generation minus second), peak memory, the FLOP-ideal speedup of one denoiser
call, and fidelity to the baseline: PSNR and SSIM of the final images, cosine of the denoiser outputs
at every step, and DINO / CLIP scores when local weights are given. Then one ToMA run is profiled
(`toma_fx.bench.breakdown`): selection, merge and unmerge as shares of the denoiser's time.

Writes `report.json`, `report.md`, `ratio.png` (speedup and fidelity against ratio) and `samples.png`.
Built-in pipelines have random weights: their images are noise, and fidelity says how far a method
moves the sampler from the baseline, not how good its images look.
"""

from __future__ import annotations

import argparse
import inspect
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from toma_fx import argtypes, caches
from toma_fx.architectures import example_inputs
from toma_fx.bench import methods as M
from toma_fx.bench.breakdown import PartitionedInductor, profile_parts
from toma_fx.bench.generation import generate
from toma_fx.bench.metrics import cosine, psnr, ssim
from toma_fx.bench.report import markdown_table, plot_against_ratio, write_sheet
from toma_fx.bench.timing import environment
from toma_fx.config import REGION_KINDS, ToMAConfig
from toma_fx.ops.baselines import CELLS
from toma_fx.pipelines import PIPELINES, denoiser_of, open_pipeline
from toma_fx.quantize import QUANTIZATIONS, quantize
from toma_fx.video_pipelines import VIDEO_DEFAULTS, denoiser_inputs

__all__ = ["Scorers", "breakdown", "main", "measure", "profile_line", "run"]

BASELINE = "compile"


@dataclass
class Scorers:
    """Semantic scorers (`toma_fx.bench.semantic`), each optional; `prompts` for CLIP-T."""

    dino: object | None = None
    clip: object | None = None
    prompts: list[str] | None = None


def measure(
    pipe,
    arch: str | None,
    inputs: dict,
    methods: list[M.Method],
    *,
    resolution: tuple[int, int],
    steps: int,
    scorers: Scorers | None = None,
    progress: bool = True,
) -> tuple[list[dict], dict[str, torch.Tensor]]:
    """Run every method on `pipe` and compare each with the `compile` method, which must be among them.

    Returns one row per method (the keys of `report.COLUMNS`, plus `kind`, `ratio`, `cosine_per_step`,
    `cosine_mean`, `step_ms_all`) and each method's final images `(B, 3, H, W)`."""
    names = [m.name for m in methods]
    if BASELINE not in names:
        raise ValueError(f"methods must include the baseline {BASELINE!r}, got {names}")
    denoiser = denoiser_of(pipe)
    example = _denoiser_call(pipe, arch, inputs, resolution) if arch else None
    runs = {}
    for method in tqdm(methods, desc="methods", disable=not progress):
        ideal = 1.0 if method.flop_ideal is None else None
        if method.flop_ideal is not None and example is not None:
            ideal = method.flop_ideal(denoiser, example)
        torch._dynamo.reset()
        undo = method.install(pipe)
        try:
            pipe.set_progress_bar_config(desc=method.name, leave=False, disable=not progress)
            first = generate(pipe, inputs, resolution=resolution, steps=steps)
            second = generate(pipe, inputs, resolution=resolution, steps=steps)
        finally:
            undo()
        runs[method.name] = (method, first, second, ideal)
    base = runs[BASELINE][2]
    base_step = statistics.median(base.step_ms)
    scorers = scorers or Scorers()
    rows = []
    for method, first, run, ideal in runs.values():
        step = statistics.median(run.step_ms)
        cosines = [cosine(a, b) for a, b in zip(base.outputs, run.outputs)]
        memory = run.peak_memory_bytes
        rows.append({
            "method": method.name,
            "kind": method.kind,
            "ratio": method.ratio,
            "step_ms": step,
            "step_ms_all": run.step_ms,
            "speedup": base_step / step,
            "total_s": run.total_s,
            "speedup_total": base.total_s / run.total_s,
            "flop_ideal_speedup": ideal,
            "of_ideal": base_step / step / ideal if ideal else None,
            "compile_s": max(first.total_s - run.total_s, 0.0),
            "peak_memory_gib": None if memory is None else memory / 2**30,
            "psnr_db": psnr(base.images, run.images),
            "ssim": ssim(base.images, run.images),
            "cosine_min": min(cosines),
            "cosine_mean": statistics.fmean(cosines),
            "cosine_per_step": cosines,
            **_semantic(scorers, base.images, run.images),
        })  # fmt: skip
    return rows, {name: r[2].images for name, r in runs.items()}


def _denoiser_call(pipe, arch: str, inputs: dict, resolution: tuple[int, int]) -> dict:
    """The keyword arguments of one denoiser call of `pipe` at `resolution` (and, for a video, the frames
    of `inputs`), for FLOP counts."""
    h, w = resolution
    if arch in VIDEO_DEFAULTS:
        return denoiser_inputs(arch, pipe, num_frames=inputs["num_frames"], height=h, width=w)
    latent = (h // pipe.vae_scale_factor, w // pipe.vae_scale_factor)
    return example_inputs(arch, denoiser_of(pipe), latent=latent)


def _semantic(scorers: Scorers, base: torch.Tensor, images: torch.Tensor) -> dict:
    dino, clip = scorers.dino, scorers.clip
    return {
        "dino": dino.similarity(base, images) if dino else None,
        "clip_image": clip.image_similarity(base, images) if clip else None,
        "clip_text": clip.text_score(images, scorers.prompts) if clip and scorers.prompts else None,
    }


def breakdown(
    pipe, inputs: dict, config: ToMAConfig, *, resolution, steps: int, regional: bool = True
) -> dict:
    """Profile one generation with ToMA cut into labelled pieces (`toma_fx.bench.breakdown`).

    Returns the shares of the denoiser's time spent in selection, merge (weights, merge matmul and
    positional gathers) and unmerge, each part's own share, and the cut graph's median step latency
    (cutting stops some fusion; compare it with the real step)."""
    denoiser = denoiser_of(pipe)
    torch._dynamo.reset()
    inner = PartitionedInductor()
    undo = M.toma(config, regional=regional, inner=inner).install(pipe)
    try:
        generate(pipe, inputs, resolution=resolution, steps=steps)  # compiles
        timed = generate(pipe, inputs, resolution=resolution, steps=steps)
        device = pipe._execution_device
        parts = profile_parts(
            lambda: generate(pipe, inputs, resolution=resolution, steps=steps), denoiser, device
        )
    finally:
        undo()
    shares = parts["shares"]
    result = {"ratio": config.ratio, "cut_step_ms": statistics.median(timed.step_ms), "parts": shares}
    if shares is None:
        return {**result, "note": "the profiler saw no ToMA piece: nothing was merged"}
    grouped = {
        "selection": shares["selection"],
        "merge": shares["weights"] + shares["merge"] + shares["gather"],
        "unmerge": shares["unmerge"],
    }
    return {**result, **grouped, "toma": sum(grouped.values()), "denoiser_ms": parts["denoiser_ms"]}


TODO_ARCHS = ("flux", "sdxl")
"""Architectures whose ToDo level is known: the token grid at 1/16 of the image's sides (Flux: 8x VAE
and 2x2 patches, the prompt's rows before the image in its joint attention; SDXL: 8x VAE and its first
attention level one downsample in), the level ToDo's reference code downsamples."""


def methods_for(
    pipe,
    config: ToMAConfig,
    ratios,
    *,
    resolution: tuple[int, int],
    regional: bool,
    eager: bool,
    tomesd: bool,
    compiler: str,
    arch: str | None = None,
    todo: bool = False,
    cache: str | None = None,
    cache_settings: dict | None = None,
    steps: int = 28,
) -> tuple[list[M.Method], dict[str, str]]:
    """The methods to run at `resolution` `(H, W)`, and the reasons for those left out. With `cache`
    (`toma_fx.caches`), plain compile and each ToMA ratio also run with that step cache."""
    chosen = [M.eager()] if eager else []
    compiled = [M.compiled(regional=regional, compiler=compiler)]
    compiled += [M.toma(config.replace(ratio=r), regional=regional, inner=compiler) for r in ratios]
    chosen += compiled
    if cache is not None:
        chosen += [M.with_cache(m, cache, steps=steps, **(cache_settings or {})) for m in compiled]
    skipped = {}
    if tomesd:
        reason = M.tomesd_skip_reason(pipe)
        if reason is None:
            latent = tuple(n // pipe.vae_scale_factor for n in resolution)  # tomesd runs on UNets only
            depth = M.tomesd_max_downsample(latent, config.min_tokens)
            chosen += [
                M.tomesd(r, max_downsample=depth, regional=regional, compiler=compiler)
                for r in ratios
                if r > 0
            ]
        else:
            skipped["tomesd"] = reason
    if todo:
        if arch in TODO_ARCHS:
            grid = (resolution[0] // 16, resolution[1] // 16)
            kept = [r for r in ratios if r in CELLS]
            chosen += [M.todo(r, grid=grid, regional=regional, compiler=compiler) for r in kept]
            if not kept:
                skipped["todo"] = f"ToDo's 2x1 and 2x2 cells need ratio 0.5 or 0.75, got {list(ratios)}"
        else:
            skipped["todo"] = f"ToDo's level is known for {list(TODO_ARCHS)}, not {arch or 'a local model'}"
    return chosen, skipped


def run(
    out_dir: Path,
    source: str = "sdxl",
    size: str | None = None,
    *,
    resolution: tuple[int, int] | None = None,
    steps: int | None = None,
    batch: int = 1,
    ratios: tuple[float, ...] = (0.25, 0.5, 0.75),
    config: ToMAConfig | None = None,
    regional: bool = True,
    eager: bool = True,
    tomesd: bool = True,
    todo: bool = False,
    profile: bool = True,
    true_cfg: bool = False,
    device: str | None = None,
    dino: str | None = None,
    clip: str | None = None,
    prompts: tuple[str, ...] = (),
    extra: tuple[M.Method, ...] = (),
    progress: bool = True,
    compiler: str = "inductor",
    frames: int | None = None,
    cache: str | None = None,
    cache_settings: dict | None = None,
    quantization: str | None = None,
) -> dict:
    """The whole benchmark on one pipeline; writes the report files into `out_dir` and returns the report.

    `config` gives tiles, token threshold and schedule; each ToMA run replaces its ratio. `steps`
    defaults to the pipeline's own default on full-size models (SDXL 50, Flux 28) and to 8 otherwise.
    `extra` methods run after the others (tests use it for a deliberately corrupted run). `compiler`
    "aot_eager" compiles without Inductor (the numbers are then no speed measurement, and no profile
    is taken: it cuts Inductor's graphs). `frames` sets a video pipeline's clip length (default: its
    `VIDEO_DEFAULTS`); its frames are scored as images."""
    import importlib.util

    from toma_fx.bench import semantic

    if importlib.util.find_spec("matplotlib") is None:
        raise ValueError(
            "the benchmark plots with matplotlib, which is missing: pip install 'toma-fx[bench]'"
        )
    config = config or ToMAConfig()
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    size = size or ("full" if dev.type == "cuda" else "mid")
    resolution = resolution or ((1024, 1024) if size == "full" else (512, 512))
    dtype = _dtype(source, dev)
    scorers = Scorers(
        dino=semantic.DinoScorer(dino, dev) if dino else None,
        clip=semantic.ClipScorer(clip, dev) if clip else None,
    )  # loaded first: a bad path fails before anything compiles
    pipe, arch, inputs = open_pipeline(
        source, size, batch=batch, prompts=prompts, true_cfg=true_cfg, device=dev, dtype=dtype
    )
    if quantization is not None:
        quantize(pipe, quantization)
    if frames is not None:
        if arch not in VIDEO_DEFAULTS:
            raise ValueError(f"frames applies to the video pipelines {sorted(VIDEO_DEFAULTS)}, got {arch!r}")
        inputs["num_frames"] = frames
    scorers.prompts = inputs.get("prompt")
    steps = steps or (_default_steps(pipe) if size == "full" else 8)
    chosen, skipped = methods_for(
        pipe, config, ratios, resolution=resolution, regional=regional, eager=eager, tomesd=tomesd,
        compiler=compiler, cache=cache, cache_settings=cache_settings, steps=steps, arch=arch, todo=todo,
    )  # fmt: skip
    rows, images = measure(
        pipe, arch, inputs, [*chosen, *extra], resolution=resolution, steps=steps, scorers=scorers,
        progress=progress,
    )  # fmt: skip
    merged = [r for r in ratios if r > 0]
    profiled = None
    if profile and merged and compiler == "inductor":
        ratio = 0.5 if 0.5 in merged else merged[-1]
        profiled = breakdown(
            pipe, inputs, config.replace(ratio=ratio), resolution=resolution, steps=steps, regional=regional
        )
    report = {
        "environment": environment(dev, dtype),
        "model": arch or source,
        "size": None if arch is None or source not in PIPELINES else size,
        "resolution": list(resolution),
        "frames": inputs.get("num_frames"),
        "steps": steps,
        "batch": batch,
        "compile": "regional" if regional else "whole",
        "baseline": BASELINE,
        "config": config.to_dict(),
        "rows": rows,
        "skipped": skipped,
        "breakdown": profiled,
    }
    _write(out_dir, report, images)
    return report


def _dtype(source: str, dev: torch.device) -> torch.dtype:
    """fp32 on CPU; on a GPU the published precision: SDXL fp16, the DiTs bf16."""
    if dev.type != "cuda":
        return torch.float32
    return torch.float16 if source == "sdxl" else torch.bfloat16


def _default_steps(pipe) -> int:
    """The pipeline's own default; 28 (the DiT pipelines' usual) where it leaves the choice open."""
    default = inspect.signature(type(pipe).__call__).parameters["num_inference_steps"].default
    return default if isinstance(default, int) else 28


def _write(out_dir: Path, report: dict, images: dict[str, torch.Tensor]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2))
    (out_dir / "report.md").write_text(format_report(report) + "\n")
    title = f"{report['model']} {_clip(report)}, {report['steps']} steps"
    plot_against_ratio(report["rows"], out_dir / "ratio.png", title=title)
    write_sheet(out_dir / "samples.png", [[(name, batch[0]) for name, batch in images.items()]])


def _clip(report: dict) -> str:
    """'512x512', or '9 frames of 512x512' for a video."""
    h, w = report["resolution"]
    frames = report.get("frames")
    return f"{frames} frames of {h}x{w}" if frames else f"{h}x{w}"


_PART_NAMES = {
    "selection": "selection",
    "weights": "merge weights",
    "merge": "merge matmul",
    "gather": "table gathers",
    "unmerge": "unmerge",
}
"""How the report names each part of `breakdown.PARTS` that is ToMA's."""


def format_report(report: dict) -> str:
    """The Markdown report: set-up, the table, what was skipped, the profile."""
    env = report["environment"]
    lines = [
        f"{report['model']} ({report['size'] or 'local'}), {_clip(report)}, {report['steps']} steps, "
        f"batch {report['batch']}, {report['compile']} compile; {env['device']}, torch {env['torch']}, "
        f"{env['dtype']}. Speedups and fidelity against plain torch.compile.",
        "",
        markdown_table(report["rows"]),
    ]
    for what, why in report["skipped"].items():
        lines += ["", f"{what}: not run, {why}."]
    if report["breakdown"]:
        lines += ["", profile_line(report["breakdown"])]
    return "\n".join(lines)


def profile_line(b: dict) -> str:
    """The report's sentence for a `breakdown` result: each of ToMA's parts and their sum."""
    if b.get("toma") is None:
        return f"Profile: {b['note']}."
    parts = ", ".join(f"{name} {b['parts'][p]:.1%}" for p, name in _PART_NAMES.items())
    return (
        f"Profile of ToMA {b['ratio']:g} (graph cut at ToMA's nodes; cut step {b['cut_step_ms']:.1f} ms): "
        f"{parts} of the denoiser's time; {b['toma']:.1%} in all."
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="toma-fx bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", choices=sorted(PIPELINES), default="sdxl", help="a built-in pipeline")
    p.add_argument("--model", metavar="PATH", help="a diffusers pipeline saved in a local folder")
    p.add_argument("--prompt", action="append", default=[], help="prompt for --model (repeatable)")
    p.add_argument("--size", choices=["tiny", "mid", "full"], help="default: full on a GPU, else mid")
    p.add_argument(
        "--resolution", type=argtypes.tile, help="image HxW (default 1024x1024 full, else 512x512)"
    )
    p.add_argument("--steps", type=argtypes.count, help="default: the pipeline's own on full size, else 8")
    p.add_argument("--batch", type=argtypes.count, default=1)
    p.add_argument(
        "--ratios", type=argtypes.ratio, nargs="+", default=[0.25, 0.5, 0.75], help="ToMA and tomesd"
    )
    p.add_argument("--tile", type=argtypes.sizes, default=ToMAConfig.tile, help=argtypes.TILE_HELP)
    p.add_argument(
        "--frames", type=argtypes.count, help="frames of a video pipeline's clip (default: its tiny clip's)"
    )
    p.add_argument(
        "--min-tokens", type=argtypes.count, default=1024, help="merge token sets of at least this"
    )
    p.add_argument("--select-every", type=argtypes.count, default=1)
    p.add_argument("--merge-every", type=argtypes.count, default=1)
    p.add_argument("--warmup-steps", type=argtypes.nonnegative, default=0)
    p.add_argument("--reuse-weights", action="store_true")
    argtypes.method_flags(p)
    p.add_argument("--kinds", nargs="+", choices=sorted(REGION_KINDS), help="what ToMA merges (default: all)")
    p.add_argument("--whole", action="store_true", help="compile whole denoisers, not their blocks")
    p.add_argument(
        "--cache", choices=sorted(caches.CACHES), help="also run plain compile and ToMA with this step cache"
    )
    p.add_argument("--cache-threshold", type=float, help="the cache's threshold (fbc, magcache)")
    p.add_argument("--quantize", choices=sorted(QUANTIZATIONS), help="torchao-quantize the denoiser first")
    argtypes.compiler_flag(p)
    p.add_argument("--no-eager", action="store_true", help="leave out the eager run")
    p.add_argument("--no-tomesd", action="store_true", help="leave out tomesd")
    p.add_argument("--todo", action="store_true", help="also ToDo at ratios 0.5 and 0.75 (flux, sdxl)")
    p.add_argument("--no-profile", action="store_true", help="leave out the profiled ToMA run")
    p.add_argument("--true-cfg", action="store_true", help="Flux: cond and uncond as two calls per step")
    p.add_argument("--dino", metavar="PATH", help="local DINO / DINOv2 weights (transformers folder)")
    p.add_argument("--clip", metavar="PATH", help="local CLIP weights (transformers folder)")
    p.add_argument("--device", help="cpu or cuda (default: cuda when present)")
    p.add_argument("--out", type=Path, help="report folder (default toma-fx-out/bench-<model>)")
    args = p.parse_args(argv)
    source = args.model or args.arch
    try:
        config = ToMAConfig(
            tile=args.tile, min_tokens=args.min_tokens, select_every=args.select_every,
            merge_every=args.merge_every, warmup_steps=args.warmup_steps, reuse_weights=args.reuse_weights,
            kinds=frozenset(args.kinds or REGION_KINDS), **argtypes.method_config(args),
        )  # fmt: skip
    except ValueError as e:  # flags that are each valid but not together (--reuse-weights --merge-form sdpa)
        p.error(str(e))
    out = args.out or Path("toma-fx-out") / f"bench-{Path(source).name}"
    try:
        report = run(
            out, source, args.size, resolution=args.resolution, steps=args.steps, batch=args.batch,
            ratios=tuple(args.ratios), config=config, regional=not args.whole, eager=not args.no_eager,
            tomesd=not args.no_tomesd, todo=args.todo, profile=not args.no_profile, true_cfg=args.true_cfg,
            device=args.device, dino=args.dino, clip=args.clip, prompts=tuple(args.prompt),
            compiler=args.compiler, frames=args.frames, cache=args.cache,
            cache_settings=None if args.cache_threshold is None else {"threshold": args.cache_threshold},
            quantization=args.quantize,
        )  # fmt: skip
    except ValueError as e:
        print(f"toma-fx bench: error: {e}", file=sys.stderr)
        return 2
    print(format_report(report))
    print(f"\nwrote {out}/report.json, report.md, ratio.png, samples.png")
    return 0
