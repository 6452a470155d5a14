"""Merge and unmerge as matmuls with a soft assignment (the assignment form, toma-fx's default).

Per tile, with `x_hat` the L2-normalised metric tokens `(S, C)` and `d_hat` its K destinations `(K, C)`:

    A = softmax over destinations of tau * d_hat @ x_hat^T      (K, S)  each token's weights sum to 1
    merge:   y  = M x,    M = A / rowsum(A)                     (K, S)  a destination is its cluster's mean
    unmerge: x' = U y',   U = A^T                               (S, K)  a token copies its destination

`rowsum(A) >= 1/K` without an epsilon: a destination's own column has cosine 1, the largest, so it
keeps at least 1/K of itself. The rows of U sum to 1, so unmerge commutes with affine maps
(U (y W + b) = (U y) W + b): the output projection may run on merged tokens. With a hard assignment
(`hard=True`, or tau large: the default 1000 is nearly hard) `M @ U = I`, U is M's pseudo-inverse and
merge -> unmerge is a projection.

Weights are computed in fp32 and cast to the tokens' dtype for the matmuls.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from toma_fx.ops.tiles import TileLayout

__all__ = ["merge", "merge_weights", "unmerge"]

DEFAULT_TAU = 1000.0


def merge_weights(
    metric: torch.Tensor,
    dst: list[torch.Tensor],
    layout: TileLayout,
    *,
    tau: float = DEFAULT_TAU,
    hard: bool = False,
) -> list[torch.Tensor]:
    """Soft assignment of every token to its tile's destinations.

    Args:
        metric: `(B, N, C)` features the similarity is measured on (the block's normed input).
        dst: `[(B, T_i, K_i)]` destination indices inside each tile, from `select_destinations`.
        layout: the site's tiles.
        tau: softmax temperature on cosine similarity, > 0. Large is sharp: 1000 (the reference
            code's value) is nearly one-hot, small blends neighbouring clusters.
        hard: one-hot assignment to the most similar destination (each destination to itself).

    Returns:
        `[(B, T_i, K_i, S_i)]` fp32 `A`, columns summing to 1.
    """
    check_tau(tau)
    out = []
    for tiles, idx in zip(layout.split(metric), dst, strict=True):
        xn = F.normalize(tiles.float(), dim=-1)  # (B, T, S, C)
        scores = gather_tokens(xn, idx) @ xn.mT  # (B, T, K, S)
        if hard:
            out.append(_hard_assignment(scores, idx))
        else:
            out.append((tau * scores).softmax(dim=-2))
    return out


def merge(x: torch.Tensor, weights: list[torch.Tensor], layout: TileLayout) -> torch.Tensor:
    """Cluster means: `(B, N, C) -> (B, sum T_i*K_i, C)`."""
    parts = []
    for tiles, A in zip(layout.split(x), weights, strict=True):
        M = (A / A.sum(-1, keepdim=True)).to(x.dtype)  # (B, T, K, S)
        parts.append(M @ tiles)  # (B, T, K, C)
    return layout.join_merged(parts)


def unmerge(y: torch.Tensor, weights: list[torch.Tensor], layout: TileLayout) -> torch.Tensor:
    """Back to every token: `(B, sum T_i*K_i, C) -> (B, N, C)`."""
    parts = layout.split_merged(y)
    return layout.join([A.mT.to(y.dtype) @ p for A, p in zip(weights, parts, strict=True)])


def check_tau(tau: float) -> None:
    if not (isinstance(tau, (int, float)) and tau > 0 and tau != float("inf")):
        raise ValueError(f"tau must be a finite number > 0, got {tau!r}")


def gather_tokens(tiles: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Rows `idx` of every tile: `(B, T, S, C), (B, T, K) -> (B, T, K, C)`."""
    return tiles.gather(2, idx[..., None].expand(*idx.shape, tiles.shape[-1]))


def _hard_assignment(scores: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """`(B, T, K, S)` one-hot columns: the best destination, and for a destination itself.

    Pinning destinations to themselves matters when two destinations are identical tokens: argmax
    alone would give the second one an empty cluster.
    """
    K, S = scores.shape[-2:]
    best = F.one_hot(scores.argmax(-2), K).mT  # (B, T, K, S)
    own = F.one_hot(idx, S)  # (B, T, K, S): destination k is token idx[k]
    is_dst = own.sum(-2, keepdim=True) > 0  # (B, T, 1, S)
    return torch.where(is_dst, own, best).float()
