"""Merge and unmerge as scaled-dot-product attention (the paper's attention form).

Tiles are the batch of an SDPA call, so a fused attention kernel produces merged tokens directly and no
assignment matrix is stored:

    merge:   y  = softmax over tokens       (tau * d_hat @ x_hat^T) @ x     queries: destinations
    unmerge: x' = softmax over destinations (tau * x_hat @ d_hat^T) @ y'    queries: tokens

The unmerge equals the assignment form's `U = A^T` exactly. The merge differs: its rows are normalised
over tokens instead of over each token's destinations, so a destination becomes a similarity-weighted
average of the whole tile rather than the mean of the tokens assigned to it; with tau = 1000 that is
close to the destination itself. `docs/operators.md` compares the two on reconstruction and speed.

Query/key features are the normalised metric cast to the tokens' dtype, since SDPA wants one dtype.
Fused GPU kernels (flash, memory-efficient) take head dims up to 256, so wider models (Flux, C = 3072)
fall back to SDPA's math path, which is the assignment form's work again.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from toma_fx.ops.assignment import DEFAULT_TAU, check_tau, gather_tokens
from toma_fx.ops.tiles import TileLayout

__all__ = ["merge_sdpa", "unmerge_sdpa"]


def merge_sdpa(
    x: torch.Tensor,
    metric: torch.Tensor,
    dst: list[torch.Tensor],
    layout: TileLayout,
    *,
    tau: float = DEFAULT_TAU,
) -> torch.Tensor:
    """`(B, N, C) -> (B, sum T_i*K_i, C)`: each destination attends over its tile's tokens."""
    check_tau(tau)
    parts = []
    for tiles, xn, idx in zip(layout.split(x), _normed_tiles(metric, layout, x.dtype), dst, strict=True):
        parts.append(F.scaled_dot_product_attention(gather_tokens(xn, idx), xn, tiles, scale=tau))
    return layout.join_merged(parts)


def unmerge_sdpa(
    y: torch.Tensor,
    metric: torch.Tensor,
    dst: list[torch.Tensor],
    layout: TileLayout,
    *,
    tau: float = DEFAULT_TAU,
) -> torch.Tensor:
    """`(B, sum T_i*K_i, C) -> (B, N, C)`: each token attends over its tile's destinations."""
    check_tau(tau)
    parts = []
    for part, xn, idx in zip(
        layout.split_merged(y), _normed_tiles(metric, layout, y.dtype), dst, strict=True
    ):
        parts.append(F.scaled_dot_product_attention(xn, gather_tokens(xn, idx), part, scale=tau))
    return layout.join(parts)


def _normed_tiles(metric: torch.Tensor, layout: TileLayout, dtype: torch.dtype) -> list[torch.Tensor]:
    return [F.normalize(t.float(), dim=-1).to(dtype) for t in layout.split(metric)]
