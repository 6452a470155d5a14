"""`toma-fx bench photos`: ToMA's merge on real photographs, against random and tomesd-style destinations.

    toma-fx bench photos --ratios 0.5 0.75 --out toma-fx-out/photos
    toma-fx bench photos --video --tiles 1x4x4 2x4x4 2x2x2 4x2x2   # 3-D tiles on panned photographs

The operators alone, on pictures a reader can judge: for each photograph bundled with scikit-image it
merges patch tokens at several ratios, unmerges them, and scores the reconstruction (PSNR). It writes
the table as JSON and a PNG with the original and each method's reconstruction side by side.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
from pathlib import Path

import torch

from toma_fx import argtypes
from toma_fx.bench.reconstruction import (
    CHOOSERS,
    PHOTOS,
    compare,
    compare_tiles,
    photo_tokens,
    reconstruct,
    strided_applies,
    tokens_to_image,
)
from toma_fx.ops import TileLayout

log = logging.getLogger(__name__)

COLUMNS = ("facility", "random", "strided", "facility_sdpa")


def run(
    out_dir: Path,
    *,
    photos: tuple[str, ...] = PHOTOS,
    ratios: tuple[float, ...] = (0.5, 0.75),
    tile: tuple[int, int] = (4, 4),
    patch: int = 8,
) -> dict:
    """Score every photo and ratio, write `report.json` and `reconstructions.png` into `out_dir`."""
    from tqdm import tqdm

    rows = []
    for name in tqdm(photos, desc="photos", unit="photo"):
        rows += compare((name,), ratios, tile, patch)
    report = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "tile": tile,
        "patch": patch,
        "rows": rows,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2))
    _write_panels(out_dir / "reconstructions.png", photos[0], max(ratios), tile, patch)
    return report


def format_table(rows: list[dict]) -> str:
    """Rows of `compare` as a fixed-width table, PSNR in dB."""
    head = f"{'photo':<10} {'grid':>7} {'ratio':>5}  " + "  ".join(f"{c:>13}" for c in COLUMNS)
    lines = [head, "-" * len(head)]
    for r in rows:
        grid = "x".join(map(str, r["grid"]))
        lines.append(
            f"{r['photo']:<10} {grid:>7} {r['ratio']:>5.2f}  "
            + "  ".join(f"{'n/a':>13}" if r[c] is None else f"{r[c]:>13.2f}" for c in COLUMNS)
        )
    return "\n".join(lines)


def _write_panels(path: Path, photo: str, ratio: float, tile: tuple[int, int], patch: int) -> None:
    """Original | facility | random | strided reconstructions of one photo, labelled."""
    from PIL import Image, ImageDraw

    tokens, grid = photo_tokens(photo, patch)
    mean = tokens.mean(dim=1, keepdim=True)
    layout = TileLayout(grid, tile, ratio)
    gen = torch.Generator().manual_seed(0)
    panels = [("original", tokens)]
    for name, choose in CHOOSERS.items():
        if name == "strided" and not strided_applies(layout):
            continue
        x = tokens - mean
        panels.append((name, reconstruct(x, layout, choose(x, layout, gen)) + mean))
    images = [tokens_to_image(t, grid, patch).clamp(0, 1).mul(255).byte().numpy() for _, t in panels]
    h, w = images[0].shape[:2]
    sheet = Image.new("RGB", (w * len(images), h + 20), "white")
    draw = ImageDraw.Draw(sheet)
    for i, ((label, _), img) in enumerate(zip(panels, images)):
        sheet.paste(Image.fromarray(img), (i * w, 20))
        draw.text((i * w + 4, 4), f"{label}" + ("" if i == 0 else f" (ratio {ratio})"), fill="black")
    sheet.save(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="toma-fx bench photos", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--out", type=Path, default=Path("toma-fx-out/photos"), help="folder for report.json and the PNG"
    )
    p.add_argument("--tile", type=argtypes.tile, default=(4, 4), help="tile in tokens, e.g. 4x4 (default)")
    p.add_argument("--video", action="store_true", help="compare 3-D tiles on 8-frame pans of the photos")
    p.add_argument("--tiles", type=argtypes.sizes, nargs="+", default=[(1, 4, 4), (2, 4, 4), (2, 2, 2)])
    p.add_argument(
        "--ratios",
        type=argtypes.ratio,
        nargs="+",
        default=[0.5, 0.75],
        help="fractions of tokens removed, in [0, 1)",
    )
    args = p.parse_args(argv)
    if args.video:
        return _video(args)
    try:
        report = run(args.out, ratios=tuple(args.ratios), tile=args.tile)
    except ValueError as e:  # e.g. a tile larger than a photo's token grid
        print(f"toma-fx bench photos: error: {e}", file=sys.stderr)
        return 2
    print(format_table(report["rows"]))
    print(f"\nwrote {args.out / 'report.json'} and {args.out / 'reconstructions.png'}")
    return 0


def _video(args) -> int:
    tiles = tuple(t if len(t) == 3 else (1, *t) for t in args.tiles)
    photos = tuple(p for p in PHOTOS if p not in ("camera", "coffee"))  # large enough to pan over
    rows = []
    for ratio in args.ratios:
        rows += compare_tiles(photos, tiles, ratio)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "video.json").write_text(json.dumps({"torch": torch.__version__, "rows": rows}, indent=2))
    names = ["x".join(map(str, t)) for t in tiles]
    print(f"{'photo':<10} {'ratio':>5}  " + "  ".join(f"{n:>8}" for n in names))
    for r in rows:
        print(f"{r['photo']:<10} {r['ratio']:>5.2f}  " + "  ".join(f"{r[n]:>8.2f}" for n in names))
    print(f"\nPSNR (dB) of merge -> unmerge; wrote {args.out / 'video.json'}")
    return 0
