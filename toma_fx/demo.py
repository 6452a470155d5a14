"""`toma-fx demo`: ToMA against plain torch.compile on SDXL-like and Flux-like pipelines, end to end.

    toma-fx demo                                       # built-in configs, random weights, no downloads
    toma-fx demo --model PATH --prompt "a red fox"     # a pipeline saved in a local folder

For each model, one pipeline is compiled twice with Inductor, regionally (or whole, `--whole`): plain
(`torch.compile`), then through `toma_fx.apply`. Each generates the same images from the same seed
twice; the first run compiles, the second is timed. Reported: per-step and end-to-end latency, the
speedup, the FLOP-ideal speedup of one denoiser call (`toma_fx.explain`), compile time, and fidelity
against the plain run: PSNR and SSIM of the final images and cosine similarity of the denoiser outputs (after
guidance) at every step. Writes `report.json` and `comparison.png` (plain | ToMA, one row per model).

With random weights the images are noise; fidelity still says how far ToMA moves the sampler from
the plain model. On a GPU the full-size architectures run at 1024x1024 in half precision.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import torch

from toma_fx.architectures import example_inputs
from toma_fx.bench.fidelity import cosine, psnr, ssim
from toma_fx.bench.timing import device_and_dtype, environment
from toma_fx.config import ToMAConfig
from toma_fx.explain import explain
from toma_fx.pipelines import apply, denoiser_of, open_pipeline, remove

__all__ = ["format_table", "run_demo"]


def run_demo(
    out_dir: Path,
    *,
    models: tuple[str, ...] = ("sdxl", "flux"),
    size: str | None = None,
    resolution: tuple[int, int] | None = None,
    steps: int = 8,
    batch: int = 1,
    config: ToMAConfig | None = None,
    model_path: str | None = None,
    prompts: tuple[str, ...] = (),
    device: str | None = None,
    regional: bool = True,
) -> dict:
    """Run every model plain and with ToMA; write `report.json` and `comparison.png` into `out_dir`."""
    dev, dtype = device_and_dtype(device, None)
    size = size or ("full" if dev.type == "cuda" else "mid")
    resolution = resolution or ((1024, 1024) if size == "full" else (512, 512))
    config = config or ToMAConfig()
    rows, images = [], []
    for name in [model_path] if model_path else models:
        pipe, arch, inputs = open_pipeline(name, size, batch=batch, prompts=prompts)
        if dev.type == "cuda":  # SDXL's VAE and UNet are published in fp16, Flux in bf16
            pipe.to(dev, torch.float16 if arch == "sdxl" else dtype)
        row, pair = _compare(pipe, arch, inputs, batch, resolution, steps, config, dev, regional)
        rows.append({"model": arch or name, "size": None if model_path else size, **row})
        images.append((rows[-1]["model"], pair))
    report = {
        "environment": environment(dev, dtype),
        "resolution": list(resolution),
        "steps": steps,
        "batch": batch,
        "config": config.to_dict(),
        "compile": "regional" if regional else "whole",
        "rows": rows,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2))
    _write_comparison(out_dir / "comparison.png", images)
    return report


def format_table(rows: list[dict]) -> str:
    cols = [
        ("model", "{}"), ("step ms plain", "{:.1f}"), ("step ms ToMA", "{:.1f}"), ("speedup", "{:.2f}x"),
        ("FLOP-ideal", "{:.2f}x"), ("total s plain", "{:.2f}"), ("total s ToMA", "{:.2f}"),
        ("compile s plain", "{:.1f}"), ("compile s ToMA", "{:.1f}"), ("PSNR dB", "{:.1f}"),
        ("SSIM", "{:.4f}"), ("cosine min", "{:.4f}"),
    ]  # fmt: skip
    keys = [
        "model", "step_ms_plain", "step_ms_toma", "speedup", "flop_ideal_speedup", "total_s_plain",
        "total_s_toma", "compile_s_plain", "compile_s_toma", "psnr_db", "ssim", "cosine_min",
    ]  # fmt: skip
    cells = [[h for h, _ in cols]]
    for r in rows:
        cells.append(["n/a" if r[k] is None else f.format(r[k]) for (_, f), k in zip(cols, keys)])
    widths = [max(len(c[i]) for c in cells) for i in range(len(cols))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])


def _compare(pipe, arch, inputs, batch, resolution, steps, config, dev, regional) -> tuple[dict, tuple]:
    flop_ideal = _flop_ideal(pipe, arch, batch, resolution, config) if arch else None
    denoiser = denoiser_of(pipe)
    runs = {}
    for label in ("plain", "toma"):
        torch._dynamo.reset()
        if label == "plain":
            _compile_plain(denoiser, regional)
        else:
            _uncompile(denoiser)
            apply(pipe, config, regional=regional)
        pipe.set_progress_bar_config(desc=f"{arch or 'model'} {label}", leave=False)
        first = _generate(pipe, inputs, resolution, steps, dev)
        runs[label] = second = _generate(pipe, inputs, resolution, steps, dev)
        second["compile_s"] = max(first["total_s"] - second["total_s"], 0.0)
    remove(pipe)
    plain, toma = runs["plain"], runs["toma"]
    cosines = [cosine(a, b) for a, b in zip(plain["outputs"], toma["outputs"])]
    step_plain, step_toma = statistics.median(plain["steps"]), statistics.median(toma["steps"])
    row = {
        "step_ms_plain": step_plain * 1e3,
        "step_ms_toma": step_toma * 1e3,
        "speedup": step_plain / step_toma,
        "flop_ideal_speedup": flop_ideal,
        "total_s_plain": plain["total_s"],
        "total_s_toma": toma["total_s"],
        "compile_s_plain": plain["compile_s"],
        "compile_s_toma": toma["compile_s"],
        "psnr_db": psnr(plain["images"], toma["images"]),
        "ssim": ssim(plain["images"], toma["images"]),
        "cosine_min": min(cosines),
        "cosine_per_step": cosines,
    }
    return row, (plain["images"][0], toma["images"][0])


def _compile_plain(denoiser, regional: bool) -> None:
    if regional and getattr(denoiser, "_repeated_blocks", None):
        denoiser.compile_repeated_blocks(fullgraph=True, dynamic=False)
    else:
        denoiser.compile(fullgraph=True, dynamic=False)


def _uncompile(denoiser) -> None:
    for module in denoiser.modules():
        module._compiled_call_impl = None


def _generate(pipe, inputs, resolution, steps, dev) -> dict:
    """One generation: images in [0, 1], seconds per step and in total, and the denoiser output the
    scheduler received at each step (after guidance), caught outside any compiled code."""
    outputs, stamps = [], []
    scheduler_step = pipe.scheduler.step

    def keep_output(model_output, *args, **kwargs):
        outputs.append(model_output.detach().float().cpu())
        return scheduler_step(model_output, *args, **kwargs)

    def stamp(pipe, i, t, callback_kwargs):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())
        return callback_kwargs

    pipe.scheduler.step = keep_output
    h, w = resolution
    if dev.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    try:
        with torch.no_grad():
            images = pipe(
                **inputs, height=h, width=w, num_inference_steps=steps, output_type="pt",
                generator=torch.Generator().manual_seed(0), callback_on_step_end=stamp,
            ).images  # fmt: skip
    finally:
        del pipe.scheduler.step
    if dev.type == "cuda":
        torch.cuda.synchronize()
    total = time.perf_counter() - start
    per_step = [b - a for a, b in zip([start, *stamps], stamps)][1:]  # step 0 also holds prompt set-up
    images = images.float().cpu()
    return {"images": images, "steps": per_step or [total], "total_s": total, "outputs": outputs}


def _flop_ideal(pipe, arch, batch, resolution, config) -> float:
    """FLOP-ideal speedup of one denoiser call at this resolution (CFG batch included)."""
    denoiser = denoiser_of(pipe)
    if arch in ("sdxl", "sd3", "pixart"):
        batch *= 2  # these pipelines stack cond and uncond in one call
    latent = (resolution[0] // pipe.vae_scale_factor, resolution[1] // pipe.vae_scale_factor)
    example = example_inputs(arch, denoiser, batch=batch, latent=latent)
    report = explain(denoiser, **example, config=config)
    if not report.regions and config.ratio > 0:
        why = report.skipped[0].why if report.skipped else "no attention or MLP found"
        h, w = resolution
        raise ValueError(f"nothing to merge in {arch} at {h}x{w} (first candidate skipped: {why})")
    return report.speedup


def _write_comparison(path: Path, rows: list[tuple[str, tuple[torch.Tensor, torch.Tensor]]]) -> None:
    """One row per model: plain | ToMA, labelled."""
    from PIL import Image, ImageDraw

    tiles = [[(img.clamp(0, 1) * 255).byte().permute(1, 2, 0).numpy() for img in pair] for _, pair in rows]
    h, w = tiles[0][0].shape[:2]
    sheet = Image.new("RGB", (2 * w, len(rows) * (h + 20)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, ((model, _), pair) in enumerate(zip(rows, tiles)):
        for c, (label, img) in enumerate(zip(("plain torch.compile", "ToMA"), pair)):
            sheet.paste(Image.fromarray(img).resize((w, h)), (c * w, r * (h + 20) + 20))
            draw.text((c * w + 4, r * (h + 20) + 4), f"{model}: {label}", fill="black")
    sheet.save(path)
