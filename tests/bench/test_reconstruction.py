"""Selection quality on real photographs: facility location beats random and strided destinations."""

import math

import pytest
import torch

pytest.importorskip("skimage", reason="the bundled photographs come with scikit-image (extra 'demo')")

from toma_fx.bench.metrics import psnr  # noqa: E402
from toma_fx.bench.reconstruction import PHOTOS, compare, photo_tokens, tokens_to_image  # noqa: E402


@pytest.fixture(scope="module")
def rows():
    return compare(ratios=(0.5, 0.75), tile=(4, 4), patch=8)


def test_every_photo_and_ratio_is_scored(rows):
    assert {(r["photo"], r["ratio"]) for r in rows} == {(p, q) for p in PHOTOS for q in (0.5, 0.75)}
    assert all(math.isfinite(r[k]) for r in rows for k in ("facility", "random", "strided", "facility_sdpa"))


def test_strided_is_left_out_where_it_does_not_apply():
    (row,) = compare(photos=("camera",), ratios=(0.25,))
    assert row["strided"] is None and row["facility"] > row["random"]


@pytest.mark.parametrize("baseline", ["random", "strided"])
def test_facility_location_reconstructs_better(rows, baseline):
    for r in rows:
        assert r["facility"] > r[baseline], r


def test_more_merging_loses_detail(rows):
    by_photo = {(r["photo"], r["ratio"]): r["facility"] for r in rows}
    assert all(by_photo[p, 0.5] > by_photo[p, 0.75] for p in PHOTOS)


def test_assignment_form_reconstructs_better_than_sdpa_form(rows):
    """The measurement behind the default merge form (docs/operators.md)."""
    assert all(r["facility"] > r["facility_sdpa"] for r in rows)


def test_patch_tokens_round_trip():
    tokens, grid = photo_tokens("camera", patch=8)
    assert grid == (64, 64) and tokens.shape == (1, 4096, 192)
    image = tokens_to_image(tokens, grid, patch=8)
    assert image.shape == (512, 512, 3)
    assert psnr(image, image) == math.inf
    assert psnr(image, image + 0.1) == pytest.approx(20.0)
    assert torch.equal(image[:8, 8:16].reshape(-1), tokens[0, 1].reshape(8, 8, 3).reshape(-1))
