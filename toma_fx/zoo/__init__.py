"""Every image and video transformer denoiser in the installed diffusers, built from config.

The coverage matrix (`tests/coverage/`) and `docs/coverage.md` run over this registry: each entry
builds its class tiny with random weights (for tests) or at its published size (on the meta device, for
FLOP counts), and makes the keyword arguments of one denoiser call for a given token grid.

    model = zoo.build("flux2")                               # tiny, random weights, eval mode
    kwargs = zoo.inputs("flux2", model, grid=(16, 12))       # 16 x 12 image tokens, batch 1
    model(**kwargs)

Grids are in tokens, after patchify: `(H, W)` for images, `(F, H, W)` for videos (latent frames after
the temporal patch). `Denoiser.patch` gives the latent pixels per token along each axis, so the latent
is `grid * patch`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

__all__ = ["DENOISERS", "Denoiser", "build", "fitted_grid", "image_tokens", "inputs", "register"]


InputsFn = Callable[..., dict]
"""`(model, grid, batch, text_tokens, rand) -> forward kwargs`; `rand(*shape)` draws seeded normal
values on the model's device and dtype."""


@dataclass(frozen=True)
class Denoiser:
    """One diffusers denoiser class and how to call it.

    Args:
        name: registry key (`"flux2"`, `"wan2.1"`).
        cls: the diffusers class name.
        tiny: constructor kwargs of a tiny model (a few blocks and channels; builds in well under a second).
        published: constructor kwargs of the published checkpoint (`{}` where the class defaults are it).
        patch: latent pixels per token along each grid axis (`(2, 2)`; `(1, 2, 2)` for most videos).
        make_inputs: builds the forward kwargs, see `InputsFn`.
        published_grid: token grid at the published resolution (`(64, 64)` at 1024x1024).
        text_tokens: prompt length of the tiny inputs.
        text_order: where text rows sit in the sequences text and image share: "text-image",
            "image-text", or None when text reaches the image tokens only as cross-attention keys.
        notes: what is special about the class (how text and image meet, its RoPE, its attention).
        mid: constructor kwargs of a mid-size model for CPU benchmarks (a few blocks at real widths),
            where one is defined.
        extra: limits on the grids the class takes: `square` (True: H == W), `grid_multiple` (each
            axis a multiple of these), `frames` (the frame counts allowed), `min_frames`.
    """

    name: str
    cls: str
    tiny: dict
    published: dict
    patch: tuple[int, ...]
    make_inputs: InputsFn
    published_grid: tuple[int, ...]
    text_tokens: int = 8
    text_order: str | None = None
    notes: str = ""
    mid: dict | None = None
    extra: dict = field(default_factory=dict)

    @property
    def video(self) -> bool:
        return len(self.patch) == 3


DENOISERS: dict[str, Denoiser] = {}
"""name -> Denoiser, in registration order (image models first, then video)."""


def register(entry: Denoiser) -> Denoiser:
    if entry.name in DENOISERS:
        raise ValueError(f"denoiser {entry.name!r} is registered twice")
    DENOISERS[entry.name] = entry
    return entry


def _entry(name: str) -> Denoiser:
    if name not in DENOISERS:
        raise ValueError(f"denoiser must be one of {sorted(DENOISERS)}, got {name!r}")
    return DENOISERS[name]


def build(name: str, size: str = "tiny", *, seed: int = 0, device="cpu", dtype=torch.float32) -> nn.Module:
    """The denoiser `name` with random weights in eval mode: `size` "tiny", "mid" (where the entry has
    one) or "published"."""
    import diffusers

    entry = _entry(name)
    configs = {"tiny": entry.tiny, "mid": entry.mid, "published": entry.published}
    if configs.get(size) is None:
        sizes = [k for k, v in configs.items() if v is not None]
        raise ValueError(f"size must be one of {sizes} for {name}, got {size!r}")
    torch.manual_seed(seed)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device), _NoUninitializedWeights():
            return getattr(diffusers, entry.cls)(**configs[size]).eval()
    finally:
        torch.set_default_dtype(default)


class _NoUninitializedWeights(torch.overrides.TorchFunctionMode):
    """`torch.empty` floats drawn from the seeded generator instead: some classes leave weights to a
    checkpoint (`nn.Parameter(torch.empty(...))`), and memory left as it was would make a random-weight
    model differ from run to run (or hold NaNs)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.empty and (kwargs.get("dtype") or torch.get_default_dtype()).is_floating_point:
            return torch.randn(*args, **kwargs).mul_(0.02)
        return func(*args, **kwargs)


def inputs(
    name: str,
    model: nn.Module,
    *,
    grid: tuple[int, ...] | None = None,
    batch: int = 1,
    text_tokens: int | None = None,
    seed: int = 0,
) -> dict:
    """Forward kwargs of `model` (an entry `name`) for a token `grid` (default 16x16, or 3x16x16)."""
    entry = _entry(name)
    grid = grid or ((3, 16, 16) if entry.video else (16, 16))
    if len(grid) != len(entry.patch):
        raise ValueError(f"grid must have {len(entry.patch)} axes for {name}, got {grid!r}")
    g = torch.Generator().manual_seed(seed)
    p = next(model.parameters())

    def rand(*shape):
        return torch.randn(*shape, generator=g).to(p.device, p.dtype)

    return entry.make_inputs(model, tuple(grid), batch, text_tokens or entry.text_tokens, rand)


def image_tokens(grid: tuple[int, ...]) -> int:
    return math.prod(grid)


def fitted_grid(name: str, grid: tuple[int, ...]) -> tuple[int, ...]:
    """`grid` changed as little as the class needs (`Denoiser.extra`): made square, rounded up to a
    multiple, its frames set to an allowed count."""
    entry = _entry(name)
    grid = list(grid)
    if entry.extra.get("square"):
        grid[-1] = grid[-2] = max(grid[-2:])
    for i, m in enumerate(entry.extra.get("grid_multiple", ())):
        grid[i] = -(-grid[i] // m) * m
    if entry.video:
        frames = entry.extra.get("frames")
        if frames and grid[0] not in frames:
            grid[0] = max(f for f in frames if f <= max(grid[0], min(frames)))
        grid[0] = max(grid[0], entry.extra.get("min_frames", 1))
    return tuple(grid)


from toma_fx.zoo import image, video  # noqa: E402,F401  (fill the registry)
