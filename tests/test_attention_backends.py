"""diffusers' attention backends (`set_attention_backend`) on CPU: the native ones are anchored like
plain SDPA; FlexAttention is reported as an attention left alone, and the MLPs around it still merge."""

import pytest

import toma_fx
from toma_fx.architectures import build, example_inputs

CONFIG = toma_fx.ToMAConfig(min_tokens=16, tile=(4, 4))


@pytest.fixture(autouse=True)
def active_backend_restored():
    """`set_attention_backend` also sets diffusers' process-wide active backend, which every later
    attention call without a backend of its own uses (and `reset_attention_backend` leaves it)."""
    from diffusers.models.attention_dispatch import _AttentionBackendRegistry

    active = _AttentionBackendRegistry._active_backend
    yield
    _AttentionBackendRegistry.set_active_backend(active)


@pytest.fixture(scope="module")
def flux():
    model = build("flux", "tiny")
    return model, example_inputs("flux", model, batch=1, latent=(16, 16), text_tokens=8, seed=0)


@pytest.mark.parametrize("backend", ["native", "_native_math"])
def test_native_backends_are_anchored(flux, backend):
    model, inputs = flux
    model.set_attention_backend(backend)
    assert toma_fx.explain(model, **inputs, config=CONFIG).counts() == {"joint": 1, "mlp": 1, "single": 2}


def test_flex_attention_is_reported_and_mlps_still_merge(flux):
    model, inputs = flux
    model.set_attention_backend("flex")
    report = toma_fx.explain(model, **inputs, config=CONFIG)
    assert report.counts() == {"mlp": 1}
    flex = [s for s in report.skipped if s.kind == "attention" and s.why.startswith("flex_attention")]
    assert {s.path for s in flex} == {
        f"{b}.attn" for b in ("transformer_blocks.0", *[f"single_transformer_blocks.{i}" for i in (0, 1)])
    }
