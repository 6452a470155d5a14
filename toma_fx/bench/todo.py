"""ToDo-style token downsampling (Smith et al. 2024, "ToDo: Token Downsampling for Efficient Generation
of High-Resolution Images"), as a baseline for the fidelity benchmark.

ToDo keeps every query and attends to a spatially downsampled set of keys and values: the image tokens
of a `H x W` grid are subsampled by `(fy, fx)` with nearest-exact interpolation (its reference code's
default). At the same kept-token budget as a merge ratio r, the factor keeps `1 - r` of the keys:
`ops.baselines.CELLS`, (2, 1) at 0.5 and (2, 2) at 0.75. Text rows (`text` of them, before the image
rows) are kept whole.

`KVDownsampling` applies it to every `scaled_dot_product_attention` whose keys are the image grid (with
its text rows) and whose queries are the same rows, that is self- and joint attention at that grid;
cross-attention and other levels are left alone. It is a `TorchFunctionMode`, so it needs no patch of
the model and runs in eager mode.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

__all__ = ["KVDownsampling"]

_SDPA_ARGS = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")


class KVDownsampling(TorchFunctionMode):
    """Within it, attention over the `grid` image tokens (after `text` text rows) sees keys and values
    downsampled by `factor`; counts the attention calls it changed in `.applied`."""

    def __init__(self, grid: tuple[int, int], factor: tuple[int, int], text: int = 0):
        super().__init__()
        H, W = grid
        fy, fx = factor
        if H % fy or W % fx:
            raise ValueError(f"factor {factor} must divide the grid {grid}")
        self.grid, self.factor, self.text, self.applied = grid, factor, text, 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            named = dict(zip(_SDPA_ARGS, args), **kwargs)  # diffusers passes them by name, or not
            q, k = named["query"], named["key"]
            rows = self.text + self.grid[0] * self.grid[1]
            if q.shape[-2] == rows and k.shape[-2] == rows and named.get("attn_mask") is None:
                self.applied += 1
                named["key"], named["value"] = self._downsample(k), self._downsample(named["value"])
                return func(**named)
        return func(*args, **kwargs)

    def _downsample(self, t: torch.Tensor) -> torch.Tensor:
        """`(..., text + H * W, D)` -> `(..., text + H * W / (fy * fx), D)`."""
        H, W = self.grid
        fy, fx = self.factor
        lead, D = t.shape[:-2], t.shape[-1]
        image = t[..., self.text :, :].reshape(-1, H, W, D).permute(0, 3, 1, 2)
        small = F.interpolate(image, size=(H // fy, W // fx), mode="nearest-exact")
        small = small.permute(0, 2, 3, 1).reshape(*lead, -1, D)
        return torch.cat([t[..., : self.text, :], small], dim=-2)
