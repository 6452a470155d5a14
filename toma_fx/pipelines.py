"""ToMA on a diffusers pipeline in one line, and pipelines to try it on without downloads.

    pipe = toma_fx.apply(pipe, ToMAConfig(ratio=0.5, select_every=3))   # compiles on the first call
    image = pipe(prompt, height=1024, width=768).images[0]
    toma_fx.remove(pipe)                                                  # the pipeline as it was

`apply` compiles the denoiser (`pipe.unet` or `pipe.transformer`) in place through `toma_backend`:
regionally by default (`compile_repeated_blocks`: one graph per block class, compiled in seconds
rather than minutes, and as fast), or whole (`regional=False`). It also tracks the pipeline's steps and
CFG branches (`toma_fx.track_steps`), and for regional compiles the latent grid that block graphs cannot
see. `dynamic=False`: each resolution compiles once, with static grids the tiles need.

`build_pipeline` assembles SDXL, Flux, SD3 and PixArt-Sigma pipelines, and the video pipelines of
`toma_fx.video_pipelines` (Wan 2.1 T2V and I2V, LTX-Video, CogVideoX, HunyuanVideo), from configs with random
weights; their text encoders are left out and `prompt_inputs` gives precomputed prompt embeddings instead.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from pathlib import Path

import torch
from diffusers.hooks.hooks import HookRegistry

from toma_fx import video_pipelines
from toma_fx.architectures import build, created_on
from toma_fx.backend import toma_backend
from toma_fx.beneath_hooks import Replan, compile_beneath_hooks
from toma_fx.config import ToMAConfig
from toma_fx.pipeline_hooks import track_steps
from toma_fx.video_pipelines import VIDEO_DEFAULTS

__all__ = [
    "ARCH_OF_PIPELINE",
    "PIPELINES",
    "apply",
    "build_pipeline",
    "compile_denoiser",
    "denoiser_of",
    "load_pipeline",
    "open_pipeline",
    "prompt_inputs",
    "remove",
]

PIPELINES = {
    "sdxl": ("StableDiffusionXLPipeline", "unet", "EulerDiscreteScheduler"),
    "flux": ("FluxPipeline", "transformer", "FlowMatchEulerDiscreteScheduler"),
    "sd3": ("StableDiffusion3Pipeline", "transformer", "FlowMatchEulerDiscreteScheduler"),
    "pixart": ("PixArtSigmaPipeline", "transformer", "DPMSolverMultistepScheduler"),
    "wan": ("WanPipeline", "transformer", "UniPCMultistepScheduler"),
    "wan-i2v": ("WanImageToVideoPipeline", "transformer", "UniPCMultistepScheduler"),
    "ltx": ("LTXPipeline", "transformer", "FlowMatchEulerDiscreteScheduler"),
    "cogvideox": ("CogVideoXPipeline", "transformer", "CogVideoXDDIMScheduler"),
    "hunyuanvideo": ("HunyuanVideoPipeline", "transformer", "FlowMatchEulerDiscreteScheduler"),
}
"""Architecture -> (pipeline class, denoiser attribute, scheduler class)."""

ARCH_OF_PIPELINE = {cls: arch for arch, (cls, _, _) in PIPELINES.items()}

_COMPILE_HOOK = "toma_fx_compile"

_WAN_SCHEDULER = dict(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0)  # 480p
_SCHEDULERS = {  # the published pipelines' scheduler settings that change the sampling loop
    "sdxl": dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, steps_offset=1),
    "flux": dict(shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15),
    "sd3": dict(shift=3.0),
    "pixart": dict(beta_schedule="linear", beta_start=0.0001, beta_end=0.02),
    "wan": _WAN_SCHEDULER,
    "wan-i2v": _WAN_SCHEDULER,
    "ltx": dict(
        use_dynamic_shifting=True,
        base_shift=0.95,
        max_shift=2.05,
        base_image_seq_len=1024,
        shift_terminal=0.1,
    ),
    "cogvideox": dict(  # CogVideoX-5b's
        clip_sample=False,
        prediction_type="v_prediction",
        rescale_betas_zero_snr=True,
        snr_shift_scale=1.0,
        timestep_spacing="trailing",
    ),
    "hunyuanvideo": dict(shift=7.0),
}
_GUIDANCE_DISTILLED = ("flux", "hunyuanvideo")
"""Pipelines whose usual call runs the denoiser once per step (the guidance scale is a model input)."""
_VAE_SCALE = {  # (scaling_factor, shift_factor) of the published VAEs
    "sdxl": (0.13025, None),
    "flux": (0.3611, 0.1159),
    "sd3": (1.5305, 0.0609),
    "pixart": (0.13025, None),
}


def denoiser_of(pipe) -> torch.nn.Module:
    denoiser = getattr(pipe, "transformer", None) or getattr(pipe, "unet", None)
    if denoiser is None:
        raise ValueError(f"{type(pipe).__name__} has neither a `transformer` nor a `unet` to accelerate")
    return denoiser


def apply(
    pipe,
    config: ToMAConfig | None = None,
    *,
    regional: bool = True,
    inner="inductor",
    mode: str | None = None,
    options: dict | None = None,
    **fields,
):
    """Compile `pipe`'s denoiser through `toma_backend` with `config`, in place; returns `pipe`.

        toma_fx.apply(pipe, ratio=0.5)                              # as tomesd.apply_patch is called
        toma_fx.apply(pipe, ToMAConfig(ratio=0.5, select_every=3))  # the same, with a config object

    Args:
        config: the config; `ToMAConfig()` when None.
        fields: `ToMAConfig` fields, validated as there; with `config`, they change those fields of it.
        regional: compile each repeated block class once (`compile_repeated_blocks`) rather than the
            whole denoiser; falls back to whole when the model declares no repeated blocks.
        inner, mode, options: as for `ToMABackend` and `torch.compile` (`mode` and `options` exclude
            each other, as in `torch.compile`).
    """
    if config is not None and not isinstance(config, ToMAConfig):
        raise ValueError(f"config must be a ToMAConfig, got {type(config).__name__}")
    config = config or ToMAConfig()
    if fields:
        config = config.replace(**fields)
    denoiser = denoiser_of(pipe)
    remove(pipe)
    regional = regional and bool(getattr(denoiser, "_repeated_blocks", None))
    # What is compiled lies beneath the denoiser's hooks (`compile_denoiser`), so the grid hook runs
    # eagerly even for a whole-model compile; block graphs of either kind may need the call's grid.
    tracker = track_steps(pipe, grids=True)
    backend = toma_backend.configure(config, inner=inner)
    kwargs = {k: v for k, v in (("mode", mode), ("options", options)) if v is not None}
    uncompile = compile_denoiser(denoiser, regional=regional, backend=backend, **kwargs)
    denoiser._toma_fx = (tracker, uncompile, config)
    return pipe


def remove(pipe):
    """Undo `apply`: the denoiser runs eagerly and untracked again; returns `pipe`."""
    denoiser = denoiser_of(pipe)
    applied = getattr(denoiser, "_toma_fx", None)
    if applied is None:
        return pipe
    tracker, uncompile, _ = applied
    uncompile()
    tracker.remove()
    del denoiser._toma_fx
    return pipe


def compile_denoiser(denoiser: torch.nn.Module, *, regional: bool, **kwargs) -> Callable[[], None]:
    """Compile `denoiser` in place with `torch.compile(fullgraph=True, dynamic=False, **kwargs)`: each
    repeated block (`_repeated_blocks`, subclasses included: tomesd's patched blocks) when `regional`
    and the model declares them, else whole. What is compiled is each module's own forward, beneath the
    diffusers hooks (step caches) around it or inside it, enabled before or after this call
    (`beneath_hooks`). Returns the function that undoes it."""
    names = set(getattr(denoiser, "_repeated_blocks", None) or ())

    def plan() -> Callable[[], None]:
        blocks = [m for m in denoiser.modules() if names.intersection(c.__name__ for c in type(m).__mro__)]
        if not regional or not blocks:
            blocks = [denoiser]
        undos = [compile_beneath_hooks(m, fullgraph=True, dynamic=False, **kwargs) for m in blocks]
        return lambda: [undo() for undo in undos]

    registry = HookRegistry.check_if_exists_or_initialize(denoiser)
    registry.remove_hook(_COMPILE_HOOK, recurse=False)
    replan = Replan(plan)
    registry.register_hook(replan, _COMPILE_HOOK)

    def undo():
        replan.undo()
        registry.remove_hook(_COMPILE_HOOK, recurse=False)

    return undo


def build_pipeline(
    name: str, size: str = "tiny", *, seed: int = 0, device: str | torch.device = "cpu", dtype=torch.float32
):
    """A diffusers pipeline of architecture `name` (`PIPELINES`) with random weights and no text encoders,
    on `device` in `dtype` (the denoiser is created there; see `architectures.build` and
    `video_pipelines.build_denoiser`). Wan I2V keeps its image encoder, built from a config like the rest."""
    import diffusers

    if name not in PIPELINES:
        raise ValueError(f"pipeline must be one of {sorted(PIPELINES)}, got {name!r}")
    pipeline_cls, attr, scheduler_cls = PIPELINES[name]
    if name in VIDEO_DEFAULTS:
        denoiser = video_pipelines.build_denoiser(name, size, seed=seed, device=device, dtype=dtype)
    else:
        denoiser = build(name, size, seed=seed, device=device, dtype=dtype)
    with created_on(device, dtype):
        components = _components(name, size, denoiser)
    scheduler = getattr(diffusers, scheduler_cls)(**_SCHEDULERS[name])
    components.update(scheduler=scheduler, **{attr: denoiser})
    cls = getattr(diffusers, pipeline_cls)
    for param in inspect.signature(cls.__init__).parameters:
        if param.startswith(("text_encoder", "tokenizer", "image_encoder", "feature_extractor")):
            components.setdefault(param, None)
    pipe = cls(**components)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def load_pipeline(path: str | Path, *, dtype: torch.dtype | None = None):
    """A pipeline saved with `save_pretrained` in a local folder; nothing is downloaded. Components saved
    as absent (text encoders left out by `build_pipeline`) load as None."""
    import diffusers

    index_file = Path(path) / "model_index.json"
    if not index_file.is_file():
        raise ValueError(f"model path {str(path)!r} is not a diffusers pipeline folder (no model_index.json)")
    index = json.loads(index_file.read_text())
    absent = {k: None for k, v in index.items() if isinstance(v, list) and v[0] is None}
    pipeline = diffusers.DiffusionPipeline
    return pipeline.from_pretrained(path, local_files_only=True, torch_dtype=dtype, **absent)


def open_pipeline(
    source: str,
    size: str = "tiny",
    *,
    batch: int = 1,
    prompts: tuple[str, ...] = (),
    true_cfg: bool = True,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
):
    """`(pipeline, architecture or None, call arguments)` for a built-in architecture (`PIPELINES`) or a
    local folder. A built-in pipeline, or a local one saved without text encoders, gets prompt
    embeddings (`true_cfg` as for `prompt_inputs`); a local one with text encoders gets `prompts` (a
    default one if none). Names win over folders: give a folder called like an architecture as `./flux`.

    A video pipeline's arguments include its `VIDEO_DEFAULTS` frame count (the caller gives height and
    width, as for images); its output is `.frames`, not `.images`."""
    text_tokens = 8 if size == "tiny" else 77
    if source in PIPELINES:
        pipe = build_pipeline(source, size, device=device, dtype=dtype)
        inputs = prompt_inputs(source, pipe, batch=batch, text_tokens=text_tokens, true_cfg=true_cfg)
        return pipe, source, _with_frames(source, inputs)
    pipe = load_pipeline(source, dtype=dtype).to(device)
    arch = ARCH_OF_PIPELINE.get(type(pipe).__name__)
    if getattr(pipe, "text_encoder", None) is None and arch is not None:
        inputs = prompt_inputs(arch, pipe, batch=batch, text_tokens=text_tokens, true_cfg=true_cfg)
    else:
        inputs = dict(prompt=list(prompts or ("a photograph of a red fox in the snow",)) * batch)
    return pipe, arch, _with_frames(arch, inputs)


def _with_frames(arch: str | None, inputs: dict) -> dict:
    """`inputs`, with the default frame count (`VIDEO_DEFAULTS`) for a video pipeline."""
    if arch in VIDEO_DEFAULTS:
        return {**inputs, "num_frames": VIDEO_DEFAULTS[arch]["num_frames"]}
    return inputs


def prompt_inputs(
    name: str, pipe, *, batch: int = 1, text_tokens: int = 8, seed: int = 0, true_cfg: bool = True
) -> dict:
    """Random prompt embeddings (and negative ones, for classifier-free guidance) for `pipe(**inputs)`.

    Flux-dev and HunyuanVideo are guidance-distilled: their usual call runs the denoiser once per step.
    `true_cfg=True` adds negative embeddings and `true_cfg_scale=2.0`, so that cond and uncond run as two
    calls per step (what toma-fx must keep apart); `true_cfg=False` is the usual call. The video pipelines'
    inputs are `video_pipelines.prompt_inputs`."""
    g = torch.Generator().manual_seed(seed)
    denoiser = denoiser_of(pipe)
    p = next(denoiser.parameters())
    cfg = denoiser.config

    def rand(*shape):
        return torch.randn(*shape, generator=g).to(p.device, p.dtype)

    if name in VIDEO_DEFAULTS:
        inputs = video_pipelines.prompt_inputs(name, denoiser, rand, batch=batch, text_tokens=text_tokens)
        return _true_cfg(name, inputs, true_cfg)
    if name == "sdxl":
        pooled = cfg.projection_class_embeddings_input_dim - 6 * cfg.addition_time_embed_dim
        text = (batch, text_tokens, cfg.cross_attention_dim)
        return dict(
            prompt_embeds=rand(*text), negative_prompt_embeds=rand(*text),
            pooled_prompt_embeds=rand(batch, pooled), negative_pooled_prompt_embeds=rand(batch, pooled),
        )  # fmt: skip
    if name in ("flux", "sd3"):
        text = (batch, text_tokens, cfg.joint_attention_dim)
        pooled = (batch, cfg.pooled_projection_dim)
        inputs = dict(
            prompt_embeds=rand(*text), negative_prompt_embeds=rand(*text),
            pooled_prompt_embeds=rand(*pooled), negative_pooled_prompt_embeds=rand(*pooled),
        )  # fmt: skip
        return _true_cfg(name, inputs, true_cfg)
    if name == "pixart":
        text = (batch, text_tokens, cfg.caption_channels)
        mask = torch.ones(batch, text_tokens, dtype=torch.long, device=p.device)
        return dict(
            prompt_embeds=rand(*text), prompt_attention_mask=mask,
            negative_prompt_embeds=rand(*text), negative_prompt_attention_mask=mask,
            negative_prompt=None,  # the pipeline's default "" would clash with the embeddings
        )  # fmt: skip
    raise ValueError(f"pipeline must be one of {sorted(PIPELINES)}, got {name!r}")


def _true_cfg(name: str, inputs: dict, true_cfg: bool) -> dict:
    """`inputs` as `prompt_inputs` documents `true_cfg`: unchanged unless the pipeline is guidance-distilled,
    then with `true_cfg_scale=2.0`, or without the negative prompt."""
    if name not in _GUIDANCE_DISTILLED:
        return inputs
    if true_cfg:
        return {**inputs, "true_cfg_scale": 2.0}
    return {k: v for k, v in inputs.items() if not k.startswith("negative_")}


def _components(name: str, size: str, denoiser) -> dict:
    """The pipeline's parts other than its denoiser and scheduler: the VAE (and Wan I2V's image encoder)."""
    if name in VIDEO_DEFAULTS:
        return video_pipelines.components(name, size, denoiser)
    return dict(vae=_vae(name, size, denoiser))


def _vae(name: str, size: str, denoiser):
    """An `AutoencoderKL` whose latent channels fit the denoiser (8x down-sampling, as published)."""
    from diffusers import AutoencoderKL

    if name == "flux":
        latent_channels = denoiser.config.in_channels // 4  # 2x2 latent patches are packed
    else:
        latent_channels = denoiser.config.in_channels
    channels = (128, 256, 512, 512) if size == "full" else (32, 32, 32, 32)
    scaling, shift = _VAE_SCALE[name]
    return AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=channels,
        layers_per_block=1 if size != "full" else 2,
        latent_channels=latent_channels,
        norm_num_groups=32,
        scaling_factor=scaling,
        shift_factor=shift,
    ).eval()
