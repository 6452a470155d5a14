"""Real photographs for the proxy denoisers: scikit-image's bundled samples, cut into augmented crops.

Training photographs each have a prompt (their index in `TRAIN`); the held-out photographs are never
seen in training and are scored with the null prompt. Pixels are in [-1, 1], images `(B, 3, S, S)`.

Each photograph is kept at a few scales (its short side `SHORT_SIDES` pixels), so a 64-pixel crop shows
anything from a texture to most of the scene; a crop takes a random scale, position and horizontal flip.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

__all__ = ["HELD_OUT", "TRAIN", "Crops", "photograph"]

TRAIN = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina")
"""The photographs the proxies learn, one prompt each: a portrait, a cat, a still life, a launch, a
starfield, a micrograph, a fundus image."""

HELD_OUT = ("motorcycle_left", "motorcycle_right")
"""Never trained on: the two views of scikit-image's stereo motorcycle."""

SHORT_SIDES = (96, 128, 176, 256)


@functools.cache
def photograph(name: str) -> torch.Tensor:
    """`(3, H, W)` float32 in [-1, 1]."""
    import skimage.data

    if name.startswith("motorcycle_"):
        left, right, _ = skimage.data.stereo_motorcycle()
        image = left if name == "motorcycle_left" else right
    else:
        image = getattr(skimage.data, name)()
    return torch.from_numpy(image[..., :3].copy()).permute(2, 0, 1).float() / 127.5 - 1


@functools.cache
def _pyramid(name: str) -> tuple[torch.Tensor, ...]:
    image = photograph(name)[None]
    short = min(image.shape[-2:])
    return tuple(
        F.interpolate(image, scale_factor=side / short, mode="bilinear", antialias=True, align_corners=False)[
            0
        ]
        for side in SHORT_SIDES
    )


class Crops:
    """Random `size x size` crops of `photos`, each labelled with its photograph's index.

    Args:
        photos: scikit-image sample names (`TRAIN`, `HELD_OUT`).
        size: crop side in pixels, at most `min(SHORT_SIDES)`.
    """

    def __init__(self, photos: tuple[str, ...] = TRAIN, size: int = 64):
        if not 1 <= size <= min(SHORT_SIDES):
            raise ValueError(f"size must be in [1, {min(SHORT_SIDES)}], got {size}")
        self.photos, self.size = photos, size

    def sample(self, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """`(images (batch, 3, size, size), labels (batch,) int64)`."""
        labels = torch.randint(len(self.photos), (batch,), generator=generator)
        scales = torch.randint(len(SHORT_SIDES), (batch,), generator=generator)
        flips = torch.rand(batch, generator=generator) < 0.5
        out = []
        for label, scale, flip in zip(labels.tolist(), scales.tolist(), flips.tolist()):
            image = _pyramid(self.photos[label])[scale]
            h, w = image.shape[-2:]
            y = torch.randint(h - self.size + 1, (), generator=generator).item()
            x = torch.randint(w - self.size + 1, (), generator=generator).item()
            crop = image[:, y : y + self.size, x : x + self.size]
            out.append(crop.flip(-1) if flip else crop)
        return torch.stack(out), labels
