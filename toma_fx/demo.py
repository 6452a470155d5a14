"""`toma-fx demo`: ToMA against plain torch.compile on SDXL-like and Flux-like pipelines, end to end, and
against its peers on denoisers trained on real photographs.

    toma-fx demo                                       # built-in configs, random weights, no downloads
    toma-fx demo --model PATH --prompt "a red fox"     # a pipeline saved in a local folder

Speed: for each model, one pipeline is compiled twice with Inductor, regionally (or whole, `--whole`):
plain (`torch.compile`), then through `toma_fx.apply`. Each generates the same images from the same
seed twice; the first run compiles, the second is timed. Reported: per-step and end-to-end latency, the
speedup, the FLOP-ideal speedup of one denoiser call (`toma_fx.explain`), compile time, and fidelity
against the plain run: PSNR and SSIM of the final images and cosine similarity of the denoiser outputs
(after guidance) at every step. With random weights their images are noise, so they are drawn only for
`--model`, into `comparison.png` (plain | ToMA).

Images: the built-in models' pictures come from the trained proxies (`toma_fx.proxies`, a Flux-like DiT
and an SDXL-like UNet trained here on photographs, shipped with the package): a sample for each of four
training prompts, unmerged beside ToMA and its peers (random and tomesd-style strided destinations,
ToDo-style key/value downsampling) at the same ratio, scored as `toma-fx bench fidelity` scores them,
into `proxies/` (`samples_<proxy>.png`, `report.md`). On a GPU the full-size architectures run at
1024x1024 in half precision.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from toma_fx.bench import fidelity, methods
from toma_fx.bench.pipeline import measure
from toma_fx.bench.report import write_sheet
from toma_fx.bench.timing import device_and_dtype, environment
from toma_fx.config import ToMAConfig
from toma_fx.pipelines import open_pipeline

__all__ = ["PROXY_HELD_OUT", "PROXY_PROMPTS", "format_table", "run_demo"]

PROXY_PROMPTS = (0, 1, 2, 3)
"""The training prompts the proxies draw a sample of (astronaut, cat, coffee, rocket): one sheet row each."""
PROXY_HELD_OUT = 4
"""Held-out crops the proxies' loss increase is averaged over (`toma-fx bench fidelity` uses 32)."""


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
    compiler: str = "inductor",
    proxies: tuple[str, ...] = ("flux", "sdxl"),
) -> dict:
    """Run every model plain and with ToMA, and (without `model_path`) the trained `proxies` with ToMA
    and its peers; write `report.json` and the pictures into `out_dir`. `compiler` "aot_eager" compiles
    the pipelines without Inductor (quick, and no speed measurement)."""
    dev, dtype = device_and_dtype(device, None)
    size = size or ("full" if dev.type == "cuda" else "mid")
    resolution = resolution or ((1024, 1024) if size == "full" else (512, 512))
    config = config or ToMAConfig()
    rows = []
    for name in [model_path] if model_path else models:
        # SDXL's VAE and UNet are published in fp16, Flux in bf16
        model_dtype = torch.float16 if dev.type == "cuda" and name == "sdxl" else dtype
        pipe, arch, inputs = open_pipeline(
            name, size, batch=batch, prompts=prompts, device=dev, dtype=model_dtype
        )
        plain = methods.compiled(regional=regional, compiler=compiler)
        toma = methods.toma(config, regional=regional, inner=compiler)
        (p, t), images = measure(
            pipe, arch, inputs, [plain, toma], resolution=resolution, steps=steps, progress=True
        )
        rows.append({
            "model": arch or name, "size": None if model_path else size,
            "step_ms_plain": p["step_ms"], "step_ms_toma": t["step_ms"], "speedup": t["speedup"],
            "flop_ideal_speedup": t["flop_ideal_speedup"],
            "total_s_plain": p["total_s"], "total_s_toma": t["total_s"],
            "compile_s_plain": p["compile_s"], "compile_s_toma": t["compile_s"],
            "psnr_db": t["psnr_db"], "ssim": t["ssim"], "cosine_min": t["cosine_min"],
            "cosine_per_step": t["cosine_per_step"],
        })  # fmt: skip
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
    if model_path:  # a user's trained pipeline, the only model run: its images show something
        model = rows[0]["model"]
        sheet = [
            [
                (f"{model}: plain torch.compile", images[plain.name][0]),
                (f"{model}: ToMA", images[toma.name][0]),
            ]
        ]
        write_sheet(out_dir / "comparison.png", sheet)
    elif proxies:
        scored = fidelity.run(out_dir / "proxies", proxies=proxies, ratios=(config.ratio,), config=config,
                              seeds=1, prompts=PROXY_PROMPTS, steps=steps,
                              held_out=PROXY_HELD_OUT)  # fmt: skip
        report["proxies"] = scored["proxies"]
    (out_dir / "report.json").write_text(json.dumps(report, indent=2))
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
