"""Selection quality on real photographs: how well merge -> unmerge reconstructs image tokens.

Photographs bundled with scikit-image (no download) are cut into `p x p` pixel patches, one token per
patch (`C = 3 p^2`), centred on the image mean so that cosine similarity sees structure, not
brightness. Each destination chooser (facility location, random, tomesd's strided grid) gets the same
tiles, the same number of destinations and the same merge weights; the PSNR of merge -> unmerge against
the original patches scores the choice alone.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from toma_fx.bench.metrics import psnr
from toma_fx.ops import (
    TileLayout,
    merge,
    merge_sdpa,
    merge_weights,
    select_destinations,
    unmerge,
    unmerge_sdpa,
)
from toma_fx.ops.baselines import CELLS, random_destinations, strided_destinations

PHOTOS = ("astronaut", "camera", "coffee", "rocket", "chelsea")
"""scikit-image's bundled photographs: a portrait, a grey street scene, a still life, a launch, a cat."""


def photo_tokens(name: str, patch: int = 8, multiple: int = 4) -> tuple[torch.Tensor, tuple[int, int]]:
    """Patch tokens of a bundled photograph.

    The image is cropped so that the token grid is a multiple of `multiple` on each side (whole tiles
    and whole tomesd cells).

    Returns:
        tokens `(1, N, 3 * patch**2)` fp32 in [0, 1], and the grid `(H, W)` with `N = H * W`.
    """
    import numpy as np
    import skimage.data

    img = getattr(skimage.data, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    px = patch * multiple
    H, W = img.shape[0] // px * multiple, img.shape[1] // px * multiple
    x = torch.from_numpy(img[: H * patch, : W * patch, :3].copy()).float() / 255
    x = x.reshape(H, patch, W, patch, 3).permute(0, 2, 1, 3, 4)
    return x.reshape(1, H * W, 3 * patch * patch), (H, W)


def tokens_to_image(tokens: torch.Tensor, grid: tuple[int, int], patch: int = 8) -> torch.Tensor:
    """Inverse of `photo_tokens`: `(1, N, 3 p^2) -> (H p, W p, 3)`."""
    H, W = grid
    x = tokens.reshape(H, W, patch, patch, 3).permute(0, 2, 1, 3, 4)
    return x.reshape(H * patch, W * patch, 3)


Chooser = Callable[[torch.Tensor, TileLayout, torch.Generator], list[torch.Tensor]]


def strided_applies(layout: TileLayout) -> bool:
    """tomesd's grid needs a ratio with a cell (0.5, 0.75) that divides a single block of tiles."""
    cell = CELLS.get(layout.ratio)
    return (
        cell is not None
        and len(layout.blocks) == 1
        and layout.tile[0] % cell[0] == 0
        and layout.tile[1] % cell[1] == 0
    )


def _strided(x: torch.Tensor, layout: TileLayout, gen: torch.Generator) -> list[torch.Tensor]:
    return strided_destinations(x.shape[0], layout, CELLS[layout.ratio], generator=gen)


CHOOSERS: dict[str, Chooser] = {
    "facility": lambda x, layout, gen: select_destinations(x, layout),
    "random": lambda x, layout, gen: random_destinations(x.shape[0], layout, generator=gen),
    "strided": _strided,
}


def reconstruct(
    x: torch.Tensor, layout: TileLayout, dst: list[torch.Tensor], form: str = "assign"
) -> torch.Tensor:
    """merge -> unmerge of `x (B, N, C)` with the given destinations, `x` as its own metric."""
    if form == "assign":
        w = merge_weights(x, dst, layout)
        return unmerge(merge(x, w, layout), w, layout)
    if form == "sdpa":
        return unmerge_sdpa(merge_sdpa(x, x, dst, layout), x, dst, layout)
    raise ValueError(f"form must be 'assign' or 'sdpa', got {form!r}")


def compare(
    photos: tuple[str, ...] = PHOTOS,
    ratios: tuple[float, ...] = (0.5, 0.75),
    tile: tuple[int, int] = (4, 4),
    patch: int = 8,
    seed: int = 0,
) -> list[dict]:
    """PSNR (dB) of every chooser, and of the SDPA form with facility-location destinations.

    Returns one row per (photo, ratio): `{"photo", "ratio", "grid", "facility", "random", "strided",
    "facility_sdpa"}`; "strided" is None where tomesd's grid does not apply (`strided_applies`).
    """
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for name in photos:
        tokens, grid = photo_tokens(name, patch)
        x = tokens - tokens.mean(dim=1, keepdim=True)
        for ratio in ratios:
            layout = TileLayout(grid, tile, ratio)
            row = {"photo": name, "ratio": ratio, "grid": grid}
            for chooser, choose in CHOOSERS.items():
                if chooser == "strided" and not strided_applies(layout):
                    row[chooser] = None
                    continue
                row[chooser] = psnr(reconstruct(x, layout, choose(x, layout, gen)), x)
            row["facility_sdpa"] = psnr(reconstruct(x, layout, select_destinations(x, layout), "sdpa"), x)
            rows.append(row)
    return rows


def pan_tokens(name: str, frames: int = 8, step: int = 4, patch: int = 8, grid: tuple[int, int] = (32, 32)):
    """A video of a bundled photograph panned `step` pixels right and down per frame (a camera move):
    tokens `(1, F * H * W, 3 p^2)` frame-major, and the grid `(F, H, W)`. Neighbouring frames share
    most of their content shifted by a fraction of a patch, as a video's do."""
    import numpy as np
    import skimage.data

    img = getattr(skimage.data, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    H, W = grid
    need = (H * patch + step * frames, W * patch + step * frames)
    if img.shape[0] < need[0] or img.shape[1] < need[1]:
        raise ValueError(f"photo {name} ({img.shape[0]}x{img.shape[1]}) is smaller than a pan of {need}")
    x = torch.from_numpy(img[..., :3].copy()).float() / 255
    crops = [x[f * step : f * step + H * patch, f * step : f * step + W * patch] for f in range(frames)]
    v = torch.stack(crops).reshape(frames, H, patch, W, patch, 3).permute(0, 1, 3, 2, 4, 5)
    return v.reshape(1, frames * H * W, 3 * patch * patch), (frames, H, W)


def compare_tiles(
    photos: tuple[str, ...], tiles: tuple[tuple[int, ...], ...], ratio: float, frames: int = 8, step: int = 4
) -> list[dict]:
    """PSNR (dB) of facility-location merge -> unmerge on panned photographs, for each 3-D tile."""
    rows = []
    for name in photos:
        tokens, grid = pan_tokens(name, frames, step)
        x = tokens - tokens.mean(dim=1, keepdim=True)
        row = {"photo": name, "ratio": ratio, "grid": grid}
        for tile in tiles:
            layout = TileLayout(grid, tile, ratio)
            row["x".join(map(str, tile))] = psnr(reconstruct(x, layout, select_destinations(x, layout)), x)
        rows.append(row)
    return rows
