"""Video pipelines built from configs (`toma_fx.video_pipelines`): a short clip with CFG, the same twice."""

import pytest
import torch

from toma_fx import ToMAConfig
from toma_fx.pipelines import PIPELINES, apply, build_pipeline, open_pipeline, prompt_inputs, remove
from toma_fx.video_pipelines import VIDEO_DEFAULTS, token_grid

STEPS = 3  # a select, a reuse and a select step at select_every=2


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The tiny VAEs' 3-D convolutions are too small to split: one thread, not a share of busy cores (up to
    10x faster on a loaded 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def generate(pipe, inputs, **clip) -> torch.Tensor:
    with torch.no_grad():
        out = pipe(
            **inputs, **clip, num_inference_steps=STEPS, output_type="pt",
            generator=torch.Generator().manual_seed(0),
        )  # fmt: skip
    return out.frames


def count_rows(pipe) -> list[int]:
    """The batch size of every denoiser call, appended as the pipeline runs."""
    rows = []
    pipe.transformer.register_forward_pre_hook(
        lambda _, args, kwargs: rows.append(len(kwargs["hidden_states"])), with_kwargs=True
    )
    return rows


@pytest.mark.parametrize("name", sorted(VIDEO_DEFAULTS))
def test_tiny_pipeline_makes_a_clip(name):
    """Batch 1 with CFG: `(B, F, 3, H, W)` frames in [0, 1], a cond and an uncond row through the denoiser
    every step (in one call or two), and the same clip again for the same seed."""
    pipe = build_pipeline(name, "tiny")
    rows = count_rows(pipe)
    clip = VIDEO_DEFAULTS[name]
    inputs = prompt_inputs(name, pipe, batch=1)
    first = generate(pipe, inputs, **clip)
    assert first.shape == (1, clip["num_frames"], 3, clip["height"], clip["width"])
    assert torch.isfinite(first).all() and first.min() >= 0 and first.max() <= 1
    assert sum(rows) == 2 * STEPS
    assert torch.equal(generate(pipe, inputs, **clip), first)


@pytest.mark.parametrize("name", sorted(VIDEO_DEFAULTS))
def test_open_pipeline_adds_the_default_frames(name):
    pipe, arch, inputs = open_pipeline(name, "tiny")
    assert arch == name and type(pipe).__name__ == PIPELINES[name][0]
    assert inputs.keys() == {*prompt_inputs(name, pipe), "num_frames"}
    assert inputs["num_frames"] == VIDEO_DEFAULTS[name]["num_frames"]


def test_hunyuanvideo_without_true_cfg_runs_once_per_step():
    """Guidance-distilled: with `true_cfg=False` one denoiser call a step (here batch 2), no negatives."""
    pipe = build_pipeline("hunyuanvideo")
    rows = count_rows(pipe)
    inputs = prompt_inputs("hunyuanvideo", pipe, batch=2, true_cfg=False)
    assert not any(key.startswith("negative_") for key in inputs) and "true_cfg_scale" not in inputs
    clip = VIDEO_DEFAULTS["hunyuanvideo"]
    frames = generate(pipe, inputs, **clip)
    assert frames.shape == (2, clip["num_frames"], 3, clip["height"], clip["width"])
    assert rows == [2] * STEPS


@pytest.mark.parametrize("name", sorted(VIDEO_DEFAULTS))
def test_apply_then_remove(name):
    """`toma_fx.apply` (regional, aot_eager) on each video pipeline: two clips in a row with CFG and
    destinations reused every other step, no recompile after the first, the same clip both times, merged
    (different from the untouched pipeline), and untouched again after `remove`."""
    pipe = build_pipeline(name)
    clip = VIDEO_DEFAULTS[name]
    inputs = prompt_inputs(name, pipe, batch=1)
    untouched = generate(pipe, inputs, **clip)
    apply(pipe, ToMAConfig(min_tokens=16, tile=(2, 2, 2), select_every=2), inner="aot_eager")
    first = generate(pipe, inputs, **clip)
    with torch._dynamo.config.patch(error_on_recompile=True):
        second = generate(pipe, inputs, **clip)
    assert first.shape == untouched.shape
    assert torch.equal(first, second)
    assert not torch.allclose(first, untouched, atol=1e-4)
    remove(pipe)
    assert torch.equal(generate(pipe, inputs, **clip), untouched)


@pytest.mark.parametrize("name", sorted(VIDEO_DEFAULTS))
def test_token_grid_of_the_default_clip(name):
    """3 latent frames of 4x6 tokens (LTX: 3 of 4x6 at 32x compression and patch 1)."""
    assert token_grid(name, build_pipeline(name), **VIDEO_DEFAULTS[name]) == (3, 4, 6)


def test_bad_names_are_clear_errors():
    with pytest.raises(ValueError, match=r"pipeline must be one of \[.*'wan-i2v'.*\], got 'wan2.1'"):
        build_pipeline("wan2.1")
    with pytest.raises(ValueError, match=r"size must be one of \('tiny', 'mid', 'full'\), got 'huge'"):
        build_pipeline("ltx", "huge")
