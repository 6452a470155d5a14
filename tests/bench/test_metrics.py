"""Fidelity metrics: exact for identical inputs, lower for corrupted ones, SSIM against its formula."""

import math

import pytest
import torch

from toma_fx.bench.metrics import cosine, patch_swd, psnr, ssim


def images(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(2, 3, 32, 24, generator=g)


def test_identical_inputs_are_exact():
    x = images()
    assert (
        psnr(x, x) == math.inf
        and ssim(x, x) == pytest.approx(1.0, abs=1e-12)
        and cosine(x, x) == pytest.approx(1.0)
    )


def test_more_corruption_scores_lower():
    x = images()
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    slight, heavy = (x + 0.02 * noise).clamp(0, 1), (x + 0.2 * noise).clamp(0, 1)
    assert psnr(x, slight) > psnr(x, heavy)
    assert 1 > ssim(x, slight) > ssim(x, heavy)
    assert 1 > cosine(x, slight) > cosine(x, heavy)


def test_ssim_of_flat_images_follows_the_formula():
    """Flat images have no variance: SSIM is the luminance term (2ab + c1) / (a^2 + b^2 + c1)."""
    a, b = torch.full((1, 1, 16, 16), 0.5), torch.full((1, 1, 16, 16), 0.7)
    c1 = 0.01**2
    assert ssim(a, b) == pytest.approx((2 * 0.5 * 0.7 + c1) / (0.5**2 + 0.7**2 + c1), rel=1e-6)  # 0.7 in fp32


def test_ssim_needs_matching_image_batches():
    with pytest.raises(ValueError, match=r"ssim needs two \(B, C, H, W\) images of one shape"):
        ssim(images(), images()[0])


def test_patch_swd_is_zero_for_one_set_and_grows_with_the_shift():
    x = images()
    assert patch_swd(x, x) == 0
    assert patch_swd(x, x.flip(0)) == pytest.approx(0, abs=1e-12)  # a set: the order of images is free
    assert 0 < patch_swd(x, (x + 0.05).clamp(0, 1)) < patch_swd(x, (x + 0.2).clamp(0, 1))


def test_patch_swd_compares_sets_of_different_sizes():
    x, y = images(0), images(1)
    assert patch_swd(x, torch.cat([y, y])) == pytest.approx(patch_swd(x, y), rel=0.05)


def test_patch_swd_names_bad_shapes():
    with pytest.raises(ValueError, match="patch_swd needs"):
        patch_swd(torch.rand(3, 8, 8), torch.rand(1, 3, 8, 8))
