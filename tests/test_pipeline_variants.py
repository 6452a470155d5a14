"""`toma_fx.apply` on the pipelines built around the same denoisers: SDXL with a ControlNet, SDXL and Flux
image-to-image and inpainting, Flux Kontext (reference-image tokens appended to the sequence).

Each is assembled from the tiny pipeline's components, so `apply` must find the denoiser, its grid and
its steps itself: image-to-image starts at a later step, inpainting concatenates mask channels or
blends latents, Kontext appends the reference image's tokens to the sequence.
"""

import inspect

import diffusers
import pytest
import torch

from tests.compiler.helpers import Recorder, merges_per_graph
from toma_fx import FallbackWarning, ToMAConfig
from toma_fx.pipelines import apply, build_pipeline, prompt_inputs

SMALL = ToMAConfig(ratio=0.5, min_tokens=16, tile=(4, 4))
SCHEDULED = {"sdxl-img2img", "flux-img2img"}  # starting at a later step: reuse must follow it
SIZE = 128


def picture(seed: int = 0, size: int = SIZE) -> torch.Tensor:
    return torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(seed))


def mask() -> torch.Tensor:
    m = torch.zeros(1, 1, SIZE, SIZE)
    m[..., SIZE // 4 : 3 * SIZE // 4, SIZE // 4 : 3 * SIZE // 4] = 1
    return m


def nothing(pipe) -> dict:
    return {}


def controlnet(pipe) -> dict:
    return dict(controlnet=diffusers.ControlNetModel.from_unet(pipe.unet, conditioning_channels=3).eval())


KONTEXT = dict(image=picture(), _auto_resize=False, max_area=SIZE * SIZE)  # else it generates 1024x1024

VARIANTS = {  # name -> (architecture, pipeline class, extra components, call arguments)
    "sdxl-controlnet": ("sdxl", "StableDiffusionXLControlNetPipeline", controlnet, dict(image=picture(1))),
    "sdxl-img2img": (
        "sdxl",
        "StableDiffusionXLImg2ImgPipeline",
        nothing,
        dict(image=picture(), strength=0.5),
    ),
    "sdxl-inpaint": (
        "sdxl",
        "StableDiffusionXLInpaintPipeline",
        nothing,
        dict(image=picture(), mask_image=mask()),
    ),
    "flux-img2img": ("flux", "FluxImg2ImgPipeline", nothing, dict(image=picture(), strength=0.5)),
    "flux-inpaint": ("flux", "FluxInpaintPipeline", nothing, dict(image=picture(), mask_image=mask())),
    "flux-kontext": ("flux", "FluxKontextPipeline", nothing, KONTEXT),
}


def with_components(arch: str, cls: str, components):
    base = build_pipeline(arch)
    pipeline = getattr(diffusers, cls)
    wanted = inspect.signature(pipeline.__init__).parameters  # not every variant takes an image encoder
    parts = {**base.components, **components(base)}
    pipe = pipeline(**{k: v for k, v in parts.items() if k in wanted})
    pipe.set_progress_bar_config(disable=True)
    return pipe, prompt_inputs(arch, base, true_cfg=False)


def generate(pipe, inputs, extra) -> torch.Tensor:
    with torch.no_grad():
        out = pipe(
            **inputs, **extra, height=SIZE, width=SIZE, num_inference_steps=3, output_type="pt",
            generator=torch.Generator().manual_seed(0),
        )  # fmt: skip
    return out.images


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_apply_finds_the_denoiser_grid_and_steps(name):
    """Every block graph is merged, the images keep their shape, and they differ from the untouched
    pipeline's; a second generation repeats the first without a recompile."""
    arch, cls, components, extra = VARIANTS[name]
    pipe, inputs = with_components(arch, cls, components)
    untouched = generate(pipe, inputs, extra)
    rec = Recorder()
    apply(pipe, SMALL.replace(select_every=2 if name in SCHEDULED else 1), inner=rec)
    first = generate(pipe, inputs, extra)
    with torch._dynamo.config.patch(error_on_recompile=True):
        second = generate(pipe, inputs, extra)
    merges = merges_per_graph(rec)
    assert merges and all(merges), f"merges per graph: {merges}"
    assert first.shape == untouched.shape == (1, 3, SIZE, SIZE)
    assert torch.equal(first, second)
    assert not torch.allclose(first, untouched, atol=1e-3)


def test_kontext_reference_of_another_size_is_left_alone_with_the_reason():
    """Kontext appends the reference image's tokens to the generated image's, in one input. Of the same
    size, the two lie on one `(2, H, W)` grid of position ids and are merged like two frames (tiles
    never span both; `test_apply_finds_the_denoiser_grid_and_steps`). Of another size, the input's rows
    lie on two grids, which the pass does not split: the blocks run unmerged (plain compile's images)
    and a warning says why."""
    pipe, inputs = with_components("flux", "FluxKontextPipeline", nothing)
    half = {**KONTEXT, "image": picture(size=SIZE // 2)}
    untouched = generate(pipe, inputs, half)
    with pytest.warns(FallbackWarning, match="nothing merged in .*attention left alone"):
        apply(pipe, SMALL, inner="aot_eager")
        merged = generate(pipe, inputs, half)
    torch.testing.assert_close(merged, untouched, atol=1e-4, rtol=0)
