"""The video pipelines of `toma_fx.pipelines.build_pipeline`: Wan 2.1 (text- and image-to-video), LTX-Video,
CogVideoX and HunyuanVideo, with random weights and no text encoders.

Each denoiser has the three sizes of `toma_fx.architectures`: `tiny` is the zoo's tiny config
(`toma_fx.zoo.DENOISERS`), `mid` a few blocks at inner dim 512 and the published latent channels (for CPU
benchmarks at real token counts), `full` the published config. The VAE is of the published class and keeps
its spatial and temporal compression at every size; below `full` it is a few channels wide.

    from toma_fx.pipelines import build_pipeline, prompt_inputs

    pipe = build_pipeline("wan", "tiny")
    clip = pipe(**prompt_inputs("wan", pipe), **VIDEO_DEFAULTS["wan"], num_inference_steps=2,
                output_type="pt").frames                                   # (1, 9, 3, 64, 96)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch
from torch import nn

from toma_fx import zoo
from toma_fx.architectures import created_on
from toma_fx.zoo.video import WAN_TEXT_TOKENS

__all__ = [
    "VIDEO_DEFAULTS", "build_denoiser", "components", "denoiser_config", "denoiser_inputs", "prompt_inputs",
    "token_grid",
]  # fmt: skip

VIDEO_DEFAULTS = {
    "wan": dict(num_frames=9, height=64, width=96),
    "wan-i2v": dict(num_frames=9, height=64, width=96),
    "ltx": dict(num_frames=17, height=128, width=192),
    "cogvideox": dict(num_frames=9, height=64, width=96),
    "hunyuanvideo": dict(num_frames=9, height=64, width=96),
}
"""Architecture -> the clip its tiny pipeline makes in about a second on CPU: a (3, 4, 6) token grid, i.e.
3 latent frames of 8x12 latents (VAE 8x, 4x in time; then 2x2 patches), 4x6 for LTX (VAE 32x, 8x in time;
patch 1). Any clip takes frames `4k + 1` (LTX `8k + 1`; CogVideoX needs an odd latent count, so `8k + 1`) and
sides that are multiples of 16 (LTX 32): the smallest is 1 frame of 16x16 (LTX 32x32)."""

_ZOO = {
    "wan": "wan2.1",
    "wan-i2v": "wan2.1-i2v",
    "ltx": "ltx",
    "cogvideox": "cogvideox",
    "hunyuanvideo": "hunyuanvideo",
}
"""Architecture -> its `toma_fx.zoo` entry (class, tiny and published configs)."""

_WAN_MID = dict(num_attention_heads=4, attention_head_dim=128, ffn_dim=2048, num_layers=4, text_dim=256)
_MID = {
    "wan": _WAN_MID,
    "wan-i2v": {**_WAN_MID, "in_channels": 36, "image_dim": 256, "added_kv_proj_dim": 512},
    "ltx": dict(
        num_attention_heads=8,
        attention_head_dim=64,
        cross_attention_dim=512,
        num_layers=4,
        caption_channels=256,
    ),
    "cogvideox": dict(
        num_attention_heads=8,
        attention_head_dim=64,
        num_layers=4,
        text_embed_dim=256,
        use_rotary_positional_embeddings=True,
    ),
    "hunyuanvideo": dict(
        num_attention_heads=4,
        attention_head_dim=128,
        num_layers=2,
        num_single_layers=4,
        num_refiner_layers=1,
        text_embed_dim=256,
        pooled_projection_dim=64,
    ),
}
"""Architecture -> mid config: inner dim 512, a few blocks, the published patch, RoPE and latent channels."""

_WAN_VAE = ("AutoencoderKLWan", {}, dict(base_dim=8, dim_mult=[1, 1, 1, 1], num_res_blocks=1))
_VAES = {  # architecture -> (class, published config beyond the class defaults, narrower below full)
    "wan": _WAN_VAE,
    "wan-i2v": _WAN_VAE,
    "ltx": (
        "AutoencoderKLLTXVideo",
        {},
        dict(
            block_out_channels=(8,) * 4,
            decoder_block_out_channels=(8,) * 4,
            layers_per_block=(1,) * 5,
            decoder_layers_per_block=(1,) * 5,
        ),
    ),
    "cogvideox": (
        "AutoencoderKLCogVideoX",
        dict(scaling_factor=0.7),  # CogVideoX-5b's (the class default is 2b's)
        dict(block_out_channels=(8,) * 4, layers_per_block=1, norm_num_groups=2),
    ),
    "hunyuanvideo": (
        "AutoencoderKLHunyuanVideo",
        {},
        dict(block_out_channels=(8,) * 4, layers_per_block=1, norm_num_groups=4),
    ),
}

_CLIP = {  # Wan I2V's image encoder (CLIPVisionConfig), its width the denoiser's image_dim
    "tiny": dict(
        intermediate_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8
    ),
    "mid": dict(
        intermediate_size=1024, num_hidden_layers=2, num_attention_heads=4, image_size=224, patch_size=14
    ),
    "full": dict(  # open-clip ViT-H/14: 257 rows of hidden_states[-2]
        intermediate_size=5120, num_hidden_layers=32, num_attention_heads=16, image_size=224, patch_size=14
    ),
}


def denoiser_config(name: str, size: str) -> dict:
    """Constructor kwargs of `name`'s denoiser at `size` ('tiny', 'mid' or 'full')."""
    if name not in _ZOO:
        raise ValueError(f"video pipeline must be one of {sorted(_ZOO)}, got {name!r}")
    if size not in ("tiny", "mid", "full"):
        raise ValueError(f"size must be one of ('tiny', 'mid', 'full'), got {size!r}")
    entry = zoo.DENOISERS[_ZOO[name]]
    return {"tiny": entry.tiny, "mid": _MID[name], "full": entry.published}[size]


def build_denoiser(
    name: str, size: str = "tiny", *, seed: int = 0, device: str | torch.device = "cpu", dtype=torch.float32
) -> nn.Module:
    """A randomly initialised video denoiser in eval mode, created on `device` in `dtype`."""
    import diffusers

    config = denoiser_config(name, size)
    cls = getattr(diffusers, zoo.DENOISERS[_ZOO[name]].cls)
    torch.manual_seed(seed)
    with created_on(device, dtype):
        return cls(**config).eval()


def components(name: str, size: str, denoiser: nn.Module) -> dict:
    """The pipeline's VAE, and for Wan I2V its image encoder and processor; call inside `created_on`."""
    parts = {"vae": _vae(name, size, denoiser)}
    if name == "wan-i2v":
        parts.update(_image_encoder(size, denoiser))
    return parts


def _vae(name: str, size: str, denoiser: nn.Module) -> nn.Module:
    """The published VAE class, its latent channels the denoiser's output channels."""
    import diffusers

    cls, published, narrow = _VAES[name]
    config = dict(published) if size == "full" else {**published, **narrow}
    channels = denoiser.config.out_channels
    if cls == "AutoencoderKLWan":
        config["z_dim"] = channels
        published_mean = inspect.signature(diffusers.AutoencoderKLWan).parameters["latents_mean"].default
        if channels != len(published_mean):  # statistics of the published 16 channels: identity instead
            config.update(latents_mean=[0.0] * channels, latents_std=[1.0] * channels)
    else:
        config["latent_channels"] = channels
    return getattr(diffusers, cls)(**config).eval()


def _image_encoder(size: str, denoiser: nn.Module) -> dict:
    """A CLIP vision tower as wide as the denoiser's `image_dim`, and the processor that sizes its input."""
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    config = _CLIP[size]
    side = config["image_size"]
    vision = CLIPVisionConfig(hidden_size=denoiser.config.image_dim, hidden_act="gelu", **config)
    return {
        "image_encoder": CLIPVisionModel(vision).eval(),
        "image_processor": CLIPImageProcessor(
            size={"shortest_edge": side}, crop_size={"height": side, "width": side}
        ),
    }


def prompt_inputs(
    name: str, denoiser: nn.Module, rand: Callable[..., torch.Tensor], *, batch: int, text_tokens: int
) -> dict:
    """Random prompt embeddings `(B, text_tokens, D)`, negative ones and masks `(B, text_tokens)` where the
    pipeline takes them; `rand(*shape)` draws seeded normal values on the denoiser's device and dtype.

    Wan I2V adds its first frame (one picture for the batch, as the pipeline takes it) and always has 512
    prompt rows: its cross-attention splits the image rows off at `len - 512`."""
    cfg = denoiser.config
    mask = torch.ones(batch, text_tokens, dtype=torch.long, device=denoiser.device)

    def prompts(dim: int, tokens: int = text_tokens, **extra) -> dict:
        text = (batch, tokens, dim)
        return dict(prompt_embeds=rand(*text), negative_prompt_embeds=rand(*text), **extra)

    if name == "wan":
        return prompts(cfg.text_dim)
    if name == "wan-i2v":
        return prompts(cfg.text_dim, WAN_TEXT_TOKENS, image=_picture(rand, name))
    if name == "ltx":
        return prompts(cfg.caption_channels, prompt_attention_mask=mask, negative_prompt_attention_mask=mask)
    if name == "cogvideox":
        return prompts(cfg.text_embed_dim)
    if name == "hunyuanvideo":
        pooled = (batch, cfg.pooled_projection_dim)
        return prompts(
            cfg.text_embed_dim,
            prompt_attention_mask=mask,
            negative_prompt_attention_mask=mask,
            pooled_prompt_embeds=rand(*pooled),
            negative_pooled_prompt_embeds=rand(*pooled),
        )
    raise ValueError(f"video pipeline must be one of {sorted(_ZOO)}, got {name!r}")


def token_grid(name: str, pipe, *, num_frames: int, height: int, width: int) -> tuple[int, int, int]:
    """`(F, H, W)` tokens of a `num_frames` x `height` x `width` clip of `name`'s pipeline `pipe`: the VAE's
    compression (the first frame is a latent frame of its own), then the denoiser's patch."""
    temporal = getattr(pipe, "vae_scale_factor_temporal", None) or pipe.vae_temporal_compression_ratio
    spatial = getattr(pipe, "vae_scale_factor_spatial", None) or pipe.vae_spatial_compression_ratio
    latent = ((num_frames - 1) // temporal + 1, height // spatial, width // spatial)
    return tuple(n // p for n, p in zip(latent, zoo.DENOISERS[_ZOO[name]].patch))


def denoiser_inputs(name: str, pipe, *, num_frames: int, height: int, width: int) -> dict:
    """Keyword arguments of one denoiser call of `name`'s pipeline `pipe` for such a clip, on random
    latents and prompt embeddings (for FLOP counts; the zoo's call of the class)."""
    grid = token_grid(name, pipe, num_frames=num_frames, height=height, width=width)
    return zoo.inputs(_ZOO[name], pipe.transformer, grid=grid)


def _picture(rand: Callable[..., torch.Tensor], name: str):
    """A random RGB picture of `name`'s default clip size (PIL, as the pipelines' processors take it)."""
    from PIL import Image

    clip = VIDEO_DEFAULTS[name]
    pixels = rand(clip["height"], clip["width"], 3).float().sigmoid() * 255
    return Image.fromarray(pixels.to(torch.uint8).cpu().numpy())
