"""What the pipeline benchmark writes: a Markdown table, PNG plots against ratio, a sheet of samples.

Rows are the dicts of `toma_fx.bench.pipeline.measure`; a missing value prints as "n/a".
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

__all__ = ["COLUMNS", "markdown_table", "plot_against_ratio", "write_sheet"]

COLUMNS = (  # (row key, header, format)
    ("method", "method", "{}"),
    ("step_ms", "step ms", "{:.1f}"),
    ("speedup", "speedup", "{:.2f}x"),
    ("total_s", "end-to-end s", "{:.2f}"),
    ("speedup_total", "end-to-end speedup", "{:.2f}x"),
    ("flop_ideal_speedup", "FLOP-ideal", "{:.2f}x"),
    ("of_ideal", "of ideal", "{:.0%}"),
    ("compile_s", "compile s", "{:.1f}"),
    ("peak_memory_gib", "peak GiB", "{:.2f}"),
    ("psnr_db", "PSNR dB", "{:.1f}"),
    ("ssim", "SSIM", "{:.4f}"),
    ("cosine_min", "cosine min", "{:.4f}"),
    ("dino", "DINO", "{:.4f}"),
    ("clip_image", "CLIP-I", "{:.4f}"),
    ("clip_text", "CLIP-T", "{:.2f}"),
)


def markdown_table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(h for _, h, _ in COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(k), f) for k, _, f in COLUMNS) + " |")
    return "\n".join(lines)


def _cell(value, fmt: str) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return fmt.format(value)


def plot_against_ratio(rows: list[dict], path: Path, *, title: str) -> None:
    """Two panels against the merge ratio: speedup over the baseline (measured, and FLOP-ideal for
    each merging method), and fidelity (PSNR; an exact match is drawn at the top of the axis)."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a server
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    kinds = [k for k in ("toma", "tomesd", "todo") if any(r["kind"] == k for r in rows)]
    merged = [r for r in rows if r["kind"] in kinds]
    finite = [r["psnr_db"] for r in merged if r["psnr_db"] is not None and math.isfinite(r["psnr_db"])]
    top = max(finite, default=40.0) + 5
    for kind in kinds:
        own = sorted((r for r in rows if r["kind"] == kind), key=lambda r: r["ratio"])
        ratios = [r["ratio"] for r in own]
        (line,) = left.plot(ratios, [r["speedup"] for r in own], "o-", label=f"{kind} measured")
        ideal = [r["flop_ideal_speedup"] for r in own]
        if all(v is not None for v in ideal):
            left.plot(ratios, ideal, "x--", color=line.get_color(), label=f"{kind} FLOP-ideal")
        psnr = [min(r["psnr_db"], top) for r in own]
        right.plot(ratios, psnr, "o-", color=line.get_color(), label=kind)
    for r in rows:
        if r["kind"] == "eager":
            left.axhline(r["speedup"], color="grey", linestyle=":", label="eager")
    left.axhline(1.0, color="black", linewidth=0.8, label="torch.compile")
    left.set(xlabel="merge ratio", ylabel="speedup per step over torch.compile", title=title)
    right.set(xlabel="merge ratio", ylabel="PSNR of final images vs torch.compile, dB", ylim=(0, top + 2))
    right.axhline(top, color="grey", linestyle=":", label="exact (inf)")
    left.legend(fontsize="small")
    right.legend(fontsize="small")
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_sheet(path: Path, rows: list[list[tuple[str, torch.Tensor]]], scale: int = 1) -> None:
    """Labelled images, one sheet row per list: `(label, (3, H, W) in [0, 1])`, each shown at the
    first image's size times `scale`."""
    from PIL import Image, ImageDraw

    h, w = (scale * d for d in rows[0][0][1].shape[-2:])
    columns = max(len(r) for r in rows)
    sheet = Image.new("RGB", (columns * w, len(rows) * (h + 20)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, row in enumerate(rows):
        for j, (label, image) in enumerate(row):
            pixels = (image.clamp(0, 1) * 255).byte().permute(1, 2, 0).numpy()
            sheet.paste(Image.fromarray(pixels).resize((w, h)), (j * w, i * (h + 20) + 20))
            draw.text((j * w + 4, i * (h + 20) + 4), label, fill="black")
    sheet.save(path)
