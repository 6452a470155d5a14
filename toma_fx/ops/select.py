"""Destination selection: greedy facility location inside each tile.

For the tokens `x_1..x_S` of a tile, pick `K` destinations `D` maximising

    f(D) = sum_j max_{i in D} cos(x_i, x_j)

greedily: each step adds the token with the largest marginal gain `sum_j relu(cos(x_v, x_j) - m_j)`,
where `m_j` is how well token j is already covered. `f` is monotone submodular, so greedy is within
`1 - 1/e` of the optimum. Starting the coverage at `m = -1` (the lowest cosine) makes the first gain
`rowsum + S`, i.e. the reference code's first pick (largest row sum), with one loop for every step.

With a `gain_scale` `(G, K, S)`, pick `t` maximises the gains times `gain_scale[:, t]` instead:
`noise.step_noise` makes such scales from a step index, so that the partition of each tile changes between
denoising steps while picks still follow coverage (`ToMAConfig.select_noise`).

Unlike the reference code, picked tokens are masked, so identical or all-zero tokens never yield
duplicate destinations, and every batch element selects on its own features.

`facility_location` is one `torch.library` op (`torch.ops.toma_fx.facility_location`) with a fake
implementation, so a compiled graph holds a single node instead of K unrolled steps. On CUDA it runs the
Triton kernel of `select_triton.py` (one program per tile, similarities on chip); elsewhere the torch
reference below.
"""

from __future__ import annotations

import importlib.util

import torch
import torch.nn.functional as F

from toma_fx.ops.noise import StepNoise
from toma_fx.ops.tiles import TileLayout

__all__ = ["facility_location", "facility_location_reference", "select_destinations"]


def facility_location_reference(
    metric: torch.Tensor, k: int, gain_scale: torch.Tensor | None = None
) -> torch.Tensor:
    """Greedy facility location per tile, in torch: the specification of the op.

    Args:
        metric: `(G, S, C)` features of G independent tiles; similarity is cosine, computed in fp32.
        k: destinations per tile, `1 <= k <= S`.
        gain_scale: `(G, k, S)` positive fp32 factors, or None: pick `t` takes the largest gain times
            `gain_scale[:, t]`.

    Returns:
        `(G, k)` int64 token indices within each tile, distinct and ascending.
    """
    G, S, _ = metric.shape
    xn = F.normalize(metric.float(), dim=-1)
    sim = xn @ xn.mT  # (G, S, S), symmetric
    cover = sim.new_full((G, S), -1.0)
    taken = torch.zeros((G, S), dtype=torch.bool, device=metric.device)
    for t in range(k):
        gain = (sim - cover[:, None, :]).clamp_min(0).sum(-1)  # (G, S), >= 0
        if gain_scale is not None:
            gain = gain * gain_scale[:, t]
        best = gain.masked_fill(taken, -1.0).argmax(-1, keepdim=True)  # (G, 1)
        taken.scatter_(1, best, True)
        cover = torch.maximum(cover, sim.gather(1, best[..., None].expand(G, 1, S)).squeeze(1))
    return _ascending(taken, k)


def _ascending(taken: torch.Tensor, k: int) -> torch.Tensor:
    """`(G, S)` bool with k True per row -> `(G, k)` their indices, ascending."""
    return taken.to(torch.uint8).sort(dim=-1, descending=True, stable=True).indices[:, :k].contiguous()


@torch.library.custom_op("toma_fx::facility_location", mutates_args=())
def facility_location(
    metric: torch.Tensor,
    k: int,
    kept: torch.Tensor | None = None,
    reuse: torch.Tensor | None = None,
    gain_scale: torch.Tensor | None = None,
) -> torch.Tensor:
    """`(G, S, C), k -> (G, k)` int64: greedy facility-location destinations per tile, ascending.

    With `kept` `(G, k)` and a 0-dim bool `reuse` on the metric's device: a copy of `kept` where
    `reuse` is true, fresh destinations where it is false. One compiled graph then serves the steps
    that select and the steps that reuse (the flag is an input, so neither recompiles), and the flag is
    read where it lives: on the host for CPU tensors, inside the kernel on CUDA (no sync, and CUDA
    graphs replay either branch). `gain_scale` `(G, k, S)` scales the gains of each pick, as in
    `facility_location_reference`."""
    _check_k(metric, k, kept, reuse, gain_scale)
    if kept is not None and bool(reuse):
        return kept.clone()
    return facility_location_reference(metric, k, gain_scale)


@facility_location.register_fake
def _(metric: torch.Tensor, k: int, kept=None, reuse=None, gain_scale=None) -> torch.Tensor:
    _check_k(metric, k, kept, reuse, gain_scale)
    return metric.new_empty((metric.shape[0], k), dtype=torch.int64)


@facility_location.register_kernel("cuda")
def _(metric: torch.Tensor, k: int, kept=None, reuse=None, gain_scale=None) -> torch.Tensor:
    _check_k(metric, k, kept, reuse, gain_scale)
    if importlib.util.find_spec("triton") is not None:
        # Imported here, not at the top: triton is an optional dependency, and importing it costs a second.
        from toma_fx.ops.select_triton import MAX_TILE, facility_location_triton

        if metric.shape[1] <= MAX_TILE:  # one tile per program: larger tiles do not fit its registers
            return facility_location_triton(metric, k, kept, reuse, gain_scale)
    fresh = facility_location_reference(metric, k, gain_scale)
    return fresh if kept is None else torch.where(reuse, kept, fresh)  # no host sync for the flag


def _check_k(metric: torch.Tensor, k: int, kept, reuse, gain_scale) -> None:
    if metric.dim() != 3:
        raise ValueError(f"metric must be (G, S, C), got shape {tuple(metric.shape)}")
    S = metric.shape[1]
    if not 1 <= k <= S:
        raise ValueError(f"k must be in [1, {S}] for tiles of {S} tokens, got {k}")
    if (kept is None) != (reuse is None):
        raise ValueError("kept and reuse are given together or not at all")
    if kept is not None:
        if kept.shape != (metric.shape[0], k) or kept.dtype != torch.int64:
            got = f"{tuple(kept.shape)} {kept.dtype}"
            raise ValueError(f"kept must be ({metric.shape[0]}, {k}) int64, got {got}")
        if reuse.shape != () or reuse.dtype != torch.bool:
            got = f"{tuple(reuse.shape)} {reuse.dtype}"
            raise ValueError(f"reuse must be a 0-dim bool tensor, got {got}")
    if gain_scale is not None:
        expected = (metric.shape[0], k, S)
        if gain_scale.shape != expected or gain_scale.dtype != torch.float32:
            got = f"{tuple(gain_scale.shape)} {gain_scale.dtype}"
            raise ValueError(f"gain_scale must be {expected} float32, got {got}")


def select_destinations(
    metric: torch.Tensor,
    layout: TileLayout,
    kept: list[torch.Tensor] | None = None,
    reuse: torch.Tensor | None = None,
    noise: StepNoise | None = None,
    avoid: tuple[list[torch.Tensor], float] | None = None,
) -> list[torch.Tensor]:
    """Destinations of every tile: `(B, N, C) -> [(B, T_i, K_i)]` int64, one tensor per block.

    Indices are positions inside the tile (`0 <= idx < S_i`), ascending. A block that keeps all its
    tokens (`K_i == S_i`) skips the op. With `kept` (destinations of the same shapes) and a 0-dim bool
    `reuse`, as for `facility_location`: `kept` where `reuse` is true. With `noise`, the gains of block
    `i` are scaled by its `noise.scales(i, ...)`. With `avoid = (last, factor)`, `last` destinations of
    the same shapes (entries outside `[0, S_i)` mark none), the gains of the tokens in `last` are also
    scaled by `factor` at every pick.
    """
    out = []
    for i, (tiles, b) in enumerate(zip(layout.split(metric), layout.blocks)):
        B, T, S, C = tiles.shape
        if b.keep == S:
            idx = torch.arange(S, device=metric.device).expand(B, T, S)
        else:
            given = (None, None) if kept is None else (kept[i].reshape(B * T, b.keep), reuse)
            # one draw per tile, the same for every sample: a sample gets the picks it would get alone
            scale = None if noise is None else noise.scales(i, (T, b.keep, S)).repeat(B, 1, 1)
            if avoid is not None:
                scale = _avoiding(avoid[0][i].reshape(B * T, b.keep), S, avoid[1], scale)
            idx = facility_location(tiles.reshape(B * T, S, C), b.keep, *given, scale).view(B, T, b.keep)
        out.append(idx)
    return out


def _avoiding(last: torch.Tensor, S: int, factor: float, scale: torch.Tensor | None) -> torch.Tensor:
    """`(G, K, S)` gain scales that also multiply the gains of the tokens in `last` `(G, K)` by `factor`."""
    was = (last[..., None] == torch.arange(S, device=last.device)).any(-2)  # (G, S); -1 matches none
    factor_of = torch.where(was, factor, 1.0)[:, None, :]  # (G, 1, S) fp32
    G, K = last.shape
    return factor_of.expand(G, K, S).contiguous() if scale is None else scale * factor_of
