"""Semantic scores on tiny random DINO / CLIP models saved to local folders: exact for identical images,
lower for more corrupted ones, CLIPScore in range, and clear errors for bad paths and inputs."""

import pytest
import torch

from toma_fx.bench.semantic import ClipScorer, DinoScorer


@pytest.fixture(scope="module")
def clip(semantic_folders):
    return ClipScorer(semantic_folders / "clip")


def images(seed=0, shape=(4, 3, 40, 48)):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def noised(x, level, seed=1):
    return x + level * torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kind", ["dinov2", "vit"])
def test_dino_identical_exact_and_corruption_lowers(semantic_folders, kind):
    scorer = DinoScorer(semantic_folders / kind)
    x = images()
    emb = scorer.embed(x)
    assert emb.shape == (4, 32) and emb.dtype == torch.float32
    assert torch.allclose(emb.norm(dim=-1), torch.ones(4), atol=1e-5)
    assert scorer.similarity(x, x) == pytest.approx(1.0, abs=1e-5)
    slight, heavy, other = (
        scorer.similarity(x, y) for y in (noised(x, 0.05), noised(x, 0.3), images(seed=7))
    )
    assert 1 - 1e-6 > slight > heavy > other


def test_clip_image_similarity_identical_exact_and_corruption_lowers(clip):
    x = images()
    emb = clip.embed_images(x)
    assert emb.shape == (4, 16) and torch.allclose(emb.norm(dim=-1), torch.ones(4), atol=1e-5)
    assert clip.image_similarity(x, x) == pytest.approx(1.0, abs=1e-5)
    slight, heavy, other = (
        clip.image_similarity(x, y) for y in (noised(x, 0.05), noised(x, 0.3), images(seed=7))
    )
    assert 1 - 1e-6 > slight > heavy > other


def test_clip_text_score_in_range_and_broadcasts(clip):
    x = images()
    one = clip.text_score(x, ["a photo of a cat"])
    assert 0 <= one <= 100
    assert one == pytest.approx(clip.text_score(x, ["a photo of a cat"] * 4), abs=1e-4)
    per_image = clip.text_score(x, ["a cat", "a dog", "a red car", "an empty room with a very long prompt"])
    assert 0 <= per_image <= 100


def test_half_precision_input_works(semantic_folders, clip):
    x = images()
    dino = DinoScorer(semantic_folders / "dinov2")
    assert dino.similarity(x.half(), x) == pytest.approx(1.0, abs=1e-2)
    assert clip.image_similarity(x.half(), x) == pytest.approx(1.0, abs=1e-2)
    assert 0 <= clip.text_score(x.half(), ["a cat"]) <= 100


def test_bad_model_semantic_folders_are_named(semantic_folders):
    with pytest.raises(
        ValueError, match=r"dino model path '.*missing' is not a local transformers model folder \(no config"
    ):
        DinoScorer(semantic_folders / "missing")
    with pytest.raises(ValueError, match=r"dino model path '.*empty' .*\(no config.json\)"):
        DinoScorer(semantic_folders / "empty")
    with pytest.raises(ValueError, match="dino model path .*'clip' model.*dinov2"):
        DinoScorer(semantic_folders / "clip")
    with pytest.raises(ValueError, match="clip model path .*'dinov2' model.*clip"):
        ClipScorer(semantic_folders / "dinov2")


def test_bad_inputs_are_named(semantic_folders, clip):
    dino = DinoScorer(semantic_folders / "vit")
    x = images()
    with pytest.raises(ValueError, match=r"images must be a \(B, 3, H, W\)"):
        dino.embed(x[:, :1])
    with pytest.raises(ValueError, match=r"images must be a \(B, 3, H, W\)"):
        clip.embed_images(x[0])
    with pytest.raises(ValueError, match=r"b must be a \(B, 3, H, W\)"):
        dino.similarity(x, x.numpy())
    with pytest.raises(ValueError, match="a and b must hold the same number of images.*4 and 3"):
        dino.similarity(x, x[:3])
    with pytest.raises(ValueError, match="a and b must hold the same number of images"):
        clip.image_similarity(x[:2], x)
    with pytest.raises(ValueError, match="prompts must be 4 strings.*got 2"):
        clip.text_score(x, ["a cat", "a dog"])
