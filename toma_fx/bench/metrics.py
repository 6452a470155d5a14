"""How close a merged run stays to the plain one: PSNR and SSIM of images, cosine of tensors; and how
close generated images are to real ones as distributions: the sliced Wasserstein distance of patches.

Images are `(B, C, H, W)` (or `(H, W, C)` for PSNR) in [0, `peak`]. Identical inputs give PSNR inf,
SSIM 1 and cosine 1, so a ratio-0 run is recognisably exact.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["cosine", "patch_swd", "psnr", "ssim"]


def psnr(a: torch.Tensor, b: torch.Tensor, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB; inf for identical inputs."""
    mse = (a.double() - b.double()).pow(2).mean().item()
    return math.inf if mse == 0 else 10 * math.log10(peak**2 / mse)


def ssim(a: torch.Tensor, b: torch.Tensor, peak: float = 1.0, window: int = 11, sigma: float = 1.5) -> float:
    """Mean structural similarity of `(B, C, H, W)` images (Wang et al. 2004: Gaussian window 11, sigma
    1.5, K1 0.01, K2 0.03), each channel on its own; 1.0 for identical inputs."""
    if a.shape != b.shape or a.dim() != 4:
        shapes = f"{tuple(a.shape)} and {tuple(b.shape)}"
        raise ValueError(f"ssim needs two (B, C, H, W) images of one shape, got {shapes}")
    a, b = a.double(), b.double()
    channels = a.shape[1]
    size = min(window, a.shape[-2], a.shape[-1])
    g = torch.exp(-((torch.arange(size, dtype=torch.double) - (size - 1) / 2) ** 2) / (2 * sigma**2))
    g = (g / g.sum()).to(a.device)
    kernel = (g[:, None] * g[None, :]).expand(channels, 1, size, size)

    def blur(x):
        return F.conv2d(x, kernel, groups=channels)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return s.mean().item()


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """Cosine similarity of two tensors as flat vectors, in float64."""
    return F.cosine_similarity(a.flatten().double(), b.flatten().double(), dim=0).item()


def patch_swd(
    a: torch.Tensor, b: torch.Tensor, *, patch: int = 7, projections: int = 256, seed: int = 0
) -> float:
    """Sliced Wasserstein-1 distance between the `patch x patch` patches of two image sets `(B, C, H, W)`
    (every patch at stride `patch // 2`), averaged over `projections` random unit directions fixed by
    `seed`: 0 for identical sets, no network needed. The sets may differ in size (quantiles are compared)."""
    if a.dim() != 4 or b.dim() != 4 or a.shape[1:2] != b.shape[1:2]:
        raise ValueError(
            "patch_swd needs (B, C, H, W) images of one channel count, "
            f"got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    stride = max(1, patch // 2)

    def patches(x):
        return F.unfold(x.double(), patch, stride=stride).transpose(1, 2).reshape(-1, x.shape[1] * patch**2)

    pa, pb = patches(a), patches(b)
    g = torch.Generator().manual_seed(seed)
    directions = torch.randn(pa.shape[1], projections, generator=g, dtype=torch.double)
    directions /= directions.norm(dim=0, keepdim=True)
    qa, qb = (pa @ directions).sort(dim=0).values, (pb @ directions).sort(dim=0).values
    n = min(len(qa), len(qb))
    levels = (torch.arange(n, dtype=torch.double) + 0.5) / n
    qa, qb = (torch.quantile(q, levels, dim=0) if len(q) != n else q for q in (qa, qb))
    return (qa - qb).abs().mean().item()
