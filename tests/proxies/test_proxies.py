"""The trained proxies: the shipped weights learned, load as a local checkpoint would, and ratio 0
leaves their samples bitwise as the unmerged model's."""

import pytest
import torch

import toma_fx
from toma_fx.proxies import PROXIES, load, save
from toma_fx.proxies.data import HELD_OUT, SHORT_SIDES, TRAIN, Crops
from toma_fx.proxies.train import denoising_loss, held_out_set, train

ARCHS = sorted(PROXIES)


@pytest.fixture(scope="module", params=ARCHS)
def shipped(request):
    return request.param, *load(request.param)


def test_shipped_weights_learned(shipped):
    arch, model, prompts, report = shipped
    proxy = PROXIES[arch]
    images = held_out_set(2)
    null = prompts(torch.full((2,), prompts.null))
    torch.manual_seed(0)
    untrained = proxy.build().eval()
    trained_loss = denoising_loss(proxy, model, null, images)
    untrained_loss = denoising_loss(proxy, untrained, null, images)
    assert trained_loss < 0.5 * untrained_loss, (trained_loss, untrained_loss)
    assert report["held_out_loss"]["trained"] < 0.5 * report["held_out_loss"]["untrained"]
    assert set(report["train_photos"]) == set(TRAIN) and not set(report["held_out_photos"]) & set(TRAIN)


def test_ratio_zero_samples_equal_the_unmerged_model_bitwise(shipped):
    arch, model, prompts, _ = shipped
    proxy = PROXIES[arch]
    cond = prompts(torch.tensor([0, 3]))

    def sample(fn):
        with torch.no_grad():
            return proxy.sample(fn, cond, steps=2, generator=torch.Generator().manual_seed(0),
                                step_context=toma_fx.step)  # fmt: skip

    torch._dynamo.reset()
    backend = toma_fx.toma_backend.configure(ratio=0.0, inner="eager")
    with torch._dynamo.config.patch(error_on_recompile=True):
        merged = sample(torch.compile(model, backend=backend, fullgraph=True))
    torch._dynamo.reset()
    assert torch.equal(merged, sample(model))


def test_saved_weights_load_back_as_they_were(tmp_path):
    model, prompts, report = train("sdxl", steps=1, batch=1, log_every=1, held_out=1)
    save(tmp_path / "sdxl", model, prompts, report)
    loaded, loaded_prompts, loaded_report = load("sdxl", tmp_path / "sdxl")
    x, t = torch.randn(1, 3, 64, 64), torch.tensor([300])
    proxy = PROXIES["sdxl"]
    with torch.no_grad():
        expected = proxy.predict(model, x, t, prompts(torch.tensor([1])))
        got = proxy.predict(loaded, x, t, loaded_prompts(torch.tensor([1])))
    assert torch.equal(got, expected)
    assert loaded_report == report


def test_load_names_what_is_wrong(tmp_path):
    with pytest.raises(ValueError, match="arch must be one of"):
        load("sd3")
    with pytest.raises(FileNotFoundError, match="train-proxy"):
        load("flux", tmp_path)


def test_crops_are_seeded_augmented_photographs_in_range():
    crops = Crops(TRAIN, 32)
    a, labels = crops.sample(6, torch.Generator().manual_seed(0))
    b, _ = crops.sample(6, torch.Generator().manual_seed(0))
    assert a.shape == (6, 3, 32, 32) and labels.shape == (6,) and torch.equal(a, b)
    assert a.min() >= -1 and a.max() <= 1 and a.std() > 0.1
    assert 0 <= labels.min() and labels.max() < len(TRAIN)
    assert held_out_set(2).shape == (2, 3, 64, 64) and len(HELD_OUT) == 2
    with pytest.raises(ValueError, match=rf"size must be in \[1, {min(SHORT_SIDES)}\]"):
        Crops(TRAIN, 512)
