"""Inputs and references shared by the selection tests."""

import math

import torch
import torch.nn.functional as F


def objective(metric: torch.Tensor, picks) -> float:
    """f(D) = sum_j max_{i in D} cos(x_i, x_j) for one tile `(S, C)`, in float64."""
    xn = F.normalize(metric.double(), dim=-1)
    return (xn[list(picks)] @ xn.T).max(0).values.sum().item()


def greedy_by_definition(metric: torch.Tensor, k: int) -> list[int]:
    """The textbook greedy on one tile: add the token that raises f the most."""
    picks: list[int] = []
    for _ in range(k):
        rest = [v for v in range(metric.shape[0]) if v not in picks]
        picks.append(max(rest, key=lambda v: objective(metric, picks + [v])))
    return sorted(picks)


def tie_free(G: int, S: int, C: int, k: int, seed: int = 0) -> torch.Tensor:
    """Random tiles whose greedy steps all win by a clear margin, so float rounding cannot flip a pick."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    while len(out) < G:
        x = torch.randn(S, C, generator=gen)
        sim = F.normalize(x.double(), dim=-1) @ F.normalize(x.double(), dim=-1).T
        cover, taken, margin = torch.full((S,), -1.0, dtype=torch.double), [], math.inf
        for _ in range(k):
            gain = (sim - cover).clamp_min(0).sum(-1)
            gain[taken] = -1.0
            top = gain.topk(min(2, S - len(taken)))
            margin = min(margin, (top.values[0] - top.values[-1]).item() if len(top.values) > 1 else math.inf)
            taken.append(top.indices[0].item())
            cover = torch.maximum(cover, sim[taken[-1]])
        if margin > 1e-4:
            out.append(x)
    return torch.stack(out)
