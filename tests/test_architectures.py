"""The model zoo: every architecture builds at tiny size, runs on its example inputs, and loads from disk."""

import pytest
import torch

from toma_fx.architectures import ARCHITECTURES, build, example_inputs, load


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_tiny_models_run_on_their_inputs(name):
    model = build(name, "tiny")
    latent = (16, 16) if name == "dit" else (16, 8)  # diffusers' DiT unpatchifies square latents only
    inputs = example_inputs(name, model, batch=2, latent=latent)
    with torch.no_grad():
        out = model(**inputs)
    out = out if isinstance(out, torch.Tensor) else out[0]
    assert out.shape[0] == 2 and torch.isfinite(out).all()


def test_load_from_a_local_folder(tmp_path):
    model = build("flux", "tiny", seed=3)
    model.save_pretrained(tmp_path)
    loaded = load("flux", str(tmp_path))
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("call, match", [
    (lambda: build("unet", "tiny"), r"architecture must be one of"),
    (lambda: build("flux", "huge"), r"size must be one of"),
    (lambda: load("plain-dit", "."), r"plain-dit is not a diffusers model"),
])  # fmt: skip
def test_bad_names_are_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
