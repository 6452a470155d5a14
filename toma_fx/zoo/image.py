"""Image (2-D) denoisers: every image transformer denoiser class of the installed diffusers.

Each `make_inputs` builds the keyword arguments that the class's pipeline passes it for a token grid `(H, W)`:
the latent in the layout the class takes (a `(B, C, H * p, W * p)` map, or packed tokens with position ids
built as the pipeline builds them), `text_tokens` rows of text embeddings, and timesteps on the pipeline's
scale (`[0, 1000)` or `[0, 1]`). `patch` counts VAE-latent pixels per token, including any 2x2 packing the
pipeline does before the call; `published_grid` is the token grid at the published resolution (1024 x 1024
unless the notes say otherwise). The notes end with what `torch.compile(fullgraph=True)` makes of the tiny
model (torch 2.13, diffusers 0.42.1).

This module holds the shared helpers and the DiTs on 4-D latents; `image_flux` the packed-token families
(Flux, HiDream, Qwen-Image), `image_unified` the single-stream models (Lumina, Z-Image, OmniGen, ...).
"""

from __future__ import annotations

import torch

from toma_fx.architectures import _DIT, _PIXART, _SD3
from toma_fx.zoo import Denoiser, register


def _param(model) -> torch.Tensor:
    """A parameter of `model`: `.to(_param(model))` puts a tensor on the model's device and dtype."""
    return next(model.parameters())


def _timesteps(model, batch: int, value: float) -> torch.Tensor:
    return torch.full((batch,), float(value), device=_param(model).device)


def _ones(model, *shape: int, dtype=torch.bool) -> torch.Tensor:
    return torch.ones(*shape, dtype=dtype, device=_param(model).device)


def _grid_ids(grid: tuple[int, int], axes: int = 3, first: float = 0, start: float = 0) -> torch.Tensor:
    """Raster-order ids of the image tokens, `(H * W, axes)`, rows `(first, start + h, start + w, 0...)`."""
    h, w = grid
    ids = torch.zeros(h, w, axes)
    ids[..., 0] = first
    ids[..., 1] = torch.arange(h)[:, None] + start
    ids[..., 2] = torch.arange(w)[None, :] + start
    return ids.reshape(h * w, axes)


def _latent(model, grid, batch: int, rand, patch: int = 2) -> torch.Tensor:
    """A `(B, in_channels, H * patch, W * patch)` latent map."""
    return rand(batch, model.config.in_channels, grid[0] * patch, grid[1] * patch)


# ----------------------------------------------------------------------------------------------------------
# DiT and PixArt, with the configs and extra kwargs of architectures.py.


def _pixart_kwargs(config: dict) -> dict:
    dim = config["num_attention_heads"] * config["attention_head_dim"]
    return dict(in_channels=4, out_channels=8, cross_attention_dim=dim, norm_num_groups=1, **config)


def _dit_kwargs(config: dict) -> dict:
    return dict(in_channels=4, out_channels=8, norm_num_groups=1, **config)


def _dit_inputs(model, grid, batch, text_tokens, rand):
    if grid[0] != grid[1]:
        raise ValueError(f"dit takes square grids only (its unpatchify assumes sqrt(N)^2 tokens), got {grid}")
    return dict(
        hidden_states=_latent(model, grid, batch, rand),
        timestep=_timesteps(model, batch, 500),
        class_labels=torch.zeros(batch, dtype=torch.long, device=_param(model).device),
    )


register(
    Denoiser(
        name="dit",
        cls="DiTTransformer2DModel",
        tiny=_dit_kwargs(_DIT["tiny"]),
        published=_dit_kwargs(_DIT["full"]),
        patch=(2, 2),
        make_inputs=_dit_inputs,
        published_grid=(16, 16),
        extra={"square": True},
        notes="DiT-XL/2 at 256 x 256, square grids only: conv patchify, sin-cos positions, class label "
        "through adaLN-Zero, no text; learned sigma doubles the output channels. Dynamo: one graph.",
    )
)


def _pixart_inputs(model, grid, batch, text_tokens, rand):
    added = {"resolution": None, "aspect_ratio": None}
    if model.use_additional_conditions:  # PixArt-alpha 1024: image size and aspect ratio in pixels
        h, w = grid[0] * 16, grid[1] * 16
        added = {
            "resolution": torch.tensor([[h, w]] * batch).to(_param(model)),
            "aspect_ratio": torch.tensor([[h / w]] * batch).to(_param(model)),
        }
    return dict(
        hidden_states=_latent(model, grid, batch, rand),
        encoder_hidden_states=rand(batch, text_tokens, model.config.caption_channels),
        timestep=_timesteps(model, batch, 500),
        added_cond_kwargs=added,
    )


register(
    Denoiser(
        name="pixart",
        cls="PixArtTransformer2DModel",
        tiny=_pixart_kwargs(_PIXART["tiny"]),
        published=_pixart_kwargs(_PIXART["full"]),
        patch=(2, 2),
        make_inputs=_pixart_inputs,
        published_grid=(64, 64),
        notes="PixArt-alpha 1024: conv patchify, sin-cos positions, T5 text only as cross-attention keys, "
        "adaLN-single (one timestep MLP, a scale-shift table per block); learned sigma. Dynamo: one graph.",
    )
)


# ----------------------------------------------------------------------------------------------------------
# MMDiTs on a 4-D latent with absolute or RoPE positions.


def _sd3_inputs(model, grid, batch, text_tokens, rand):
    cfg = model.config
    return dict(
        hidden_states=_latent(model, grid, batch, rand),
        encoder_hidden_states=rand(batch, text_tokens, cfg.joint_attention_dim),
        pooled_projections=rand(batch, cfg.pooled_projection_dim),
        timestep=_timesteps(model, batch, 500),
    )


register(
    Denoiser(
        name="sd3",
        cls="SD3Transformer2DModel",
        tiny=_SD3["tiny"],
        published=_SD3["full"],
        patch=(2, 2),
        make_inputs=_sd3_inputs,
        published_grid=(64, 64),
        text_order="image-text",
        notes="SD3-medium: conv patchify plus a centre crop of a 192 x 192 sin-cos table; joint attention "
        "over cat([image, text]) in every block, separate streams elsewhere; GELU FFN. Dynamo: one graph.",
    )
)


def _auraflow_inputs(model, grid, batch, text_tokens, rand):
    return dict(
        hidden_states=_latent(model, grid, batch, rand),
        encoder_hidden_states=rand(batch, text_tokens, model.config.joint_attention_dim),
        timestep=_timesteps(model, batch, 0.5),
    )


register(
    Denoiser(
        name="auraflow",
        cls="AuraFlowTransformer2DModel",
        tiny=dict(
            sample_size=32,
            patch_size=2,
            in_channels=4,
            num_mmdit_layers=1,
            num_single_dit_layers=2,
            attention_head_dim=16,
            num_attention_heads=2,
            joint_attention_dim=32,
            caption_projection_dim=32,
            out_channels=4,
            pos_embed_max_size=1024,
        ),
        published=dict(pos_embed_max_size=9216),
        patch=(2, 2),
        make_inputs=_auraflow_inputs,
        published_grid=(64, 64),
        text_order="text-image",
        notes="AuraFlow: linear patchify plus a centre crop of a learned table (96 x 96 in the checkpoint; "
        "the class default 1024 covers 32 x 32); 8 register tokens before the text; MMDiT blocks, then "
        "single blocks on cat([registers, text, image]); SwiGLU FFN. Dynamo: one graph.",
    )
)


def _cogview_inputs(model, grid, batch, text_tokens, rand):
    """CogView3-Plus and CogView4: SDXL-style size micro-conditions in pixels (8x VAE, 2x2 patches)."""
    size = torch.tensor([[grid[0] * 16, grid[1] * 16]] * batch).to(_param(model))
    return dict(
        hidden_states=_latent(model, grid, batch, rand),
        encoder_hidden_states=rand(batch, text_tokens, model.config.text_embed_dim),
        timestep=_timesteps(model, batch, 500),
        original_size=size,
        target_size=size,
        crop_coords=torch.zeros_like(size),
    )


_COGVIEW_TINY = dict(
    patch_size=2,
    in_channels=4,
    out_channels=4,
    num_layers=2,
    attention_head_dim=16,
    num_attention_heads=2,
    text_embed_dim=32,
    time_embed_dim=16,
    condition_dim=4,
)

register(
    Denoiser(
        name="cogview3",
        cls="CogView3PlusTransformer2DModel",
        tiny=dict(_COGVIEW_TINY, pos_embed_max_size=32, sample_size=32),
        published={},
        patch=(2, 2),
        make_inputs=_cogview_inputs,
        published_grid=(64, 64),
        text_order="text-image",
        notes="CogView3-Plus: linear patchify; text projected in the patch embed, cropped sin-cos table "
        "(zeros for text); joint attention over cat([text, image]), LayerNorm q/k norms. Dynamo: one graph.",
    )
)

register(
    Denoiser(
        name="cogview4",
        cls="CogView4Transformer2DModel",
        tiny=_COGVIEW_TINY,
        published=dict(num_layers=28, attention_head_dim=128, num_attention_heads=32),
        patch=(2, 2),
        make_inputs=_cogview_inputs,
        published_grid=(64, 64),
        text_order="text-image",
        notes="CogView4-6B (the class defaults are CogView3-Plus sizes): linear patchify, 2-D RoPE from the "
        "latent shape written into the image slice of q/k, joint attention over cat([text, image]). Dynamo: "
        "one graph.",
    )
)


def _glm_image_inputs(model, grid, batch, text_tokens, rand):
    """GLM-Image: one prior token of the autoregressive stage per image token, none dropped."""
    n = grid[0] * grid[1]
    device = _param(model).device
    prior = torch.arange(n, device=device) % model.config.prior_vq_quantizer_codebook_size
    return dict(
        hidden_states=_latent(model, grid, batch, rand),
        encoder_hidden_states=rand(batch, text_tokens, model.config.text_embed_dim),
        prior_token_id=prior.expand(batch, n),
        prior_token_drop=torch.zeros(batch, n, dtype=torch.bool, device=device),
        timestep=_timesteps(model, batch, 500),
        target_size=torch.tensor([[grid[0] * 16, grid[1] * 16]] * batch).to(_param(model)),
        crop_coords=torch.zeros(batch, 2).to(_param(model)),
    )


register(
    Denoiser(
        name="glm-image",
        cls="GlmImageTransformer2DModel",
        tiny=dict(_COGVIEW_TINY, prior_vq_quantizer_codebook_size=64),
        published={},
        patch=(2, 2),
        make_inputs=_glm_image_inputs,
        published_grid=(64, 64),
        text_order="text-image",
        notes="GLM-Image decoder (CogView4 blocks): a prior-token embedding added to every image token, "
        "ByT5 glyph text joined as in CogView4; published = class defaults, unchecked. Dynamo: one graph.",
    )
)


def _hunyuan_dit_inputs(model, grid, batch, text_tokens, rand):
    """HunyuanDiT: CLIP and T5 prompts at their config lengths, 2-D RoPE as the pipeline builds it."""
    from diffusers.models.embeddings import get_2d_rotary_pos_embed

    cfg = model.config
    if text_tokens != cfg.text_len + cfg.text_len_t5:
        raise ValueError(f"hunyuan-dit takes text_len + text_len_t5 = {cfg.text_len + cfg.text_len_t5} rows")
    h, w = grid
    base = 512 // 8 // cfg.patch_size  # the pipeline fits the grid into this square, centred
    size = (base, round(base / h * w)) if h > w else (round(base / w * h), base)
    top, left = round((base - size[0]) / 2), round((base - size[1]) / 2)
    crop = ((top, left), (top + size[0], left + size[1]))
    device = _param(model).device
    return dict(
        hidden_states=_latent(model, grid, batch, rand),
        timestep=_timesteps(model, batch, 500),
        encoder_hidden_states=rand(batch, cfg.text_len, cfg.cross_attention_dim),
        text_embedding_mask=_ones(model, batch, cfg.text_len, dtype=torch.long),
        encoder_hidden_states_t5=rand(batch, cfg.text_len_t5, cfg.cross_attention_dim_t5),
        text_embedding_mask_t5=_ones(model, batch, cfg.text_len_t5, dtype=torch.long),
        image_meta_size=torch.tensor([[1024, 1024, h * 16, w * 16, 0, 0]] * batch).to(_param(model)),
        style=torch.zeros(batch, dtype=torch.long, device=device),
        image_rotary_emb=get_2d_rotary_pos_embed(cfg.attention_head_dim, crop, grid, device=device),
    )


register(
    Denoiser(
        name="hunyuan-dit",
        cls="HunyuanDiT2DModel",
        tiny=dict(
            num_attention_heads=2,
            attention_head_dim=16,
            in_channels=4,
            patch_size=2,
            sample_size=32,
            hidden_size=32,
            num_layers=4,
            cross_attention_dim=32,
            cross_attention_dim_t5=32,
            pooled_projection_dim=16,
            text_len=8,
            text_len_t5=8,
        ),
        published=dict(
            in_channels=4, patch_size=2, sample_size=128, hidden_size=1408, num_layers=40, mlp_ratio=4.3637
        ),
        patch=(2, 2),
        make_inputs=_hunyuan_dit_inputs,
        published_grid=(64, 64),
        text_tokens=16,
        notes="HunyuanDiT: conv patchify, 2-D RoPE passed in by the pipeline, CLIP + T5 text only as "
        "cross-attention keys, U-ViT long skips (first half to second half); learned sigma. text_tokens "
        "must be text_len + text_len_t5. Dynamo: one graph.",
    )
)


# ----------------------------------------------------------------------------------------------------------
# DiTs whose text enters only as attention keys: Sana, PRX, and the DreamLite UNet's transformer block.


def _sana_inputs(model, grid, batch, text_tokens, rand):
    return dict(
        hidden_states=_latent(model, grid, batch, rand, patch=1),
        encoder_hidden_states=rand(batch, text_tokens, model.config.caption_channels),
        encoder_attention_mask=_ones(model, batch, text_tokens, dtype=torch.long),
        timestep=_timesteps(model, batch, 500),
    )


register(
    Denoiser(
        name="sana",
        cls="SanaTransformer2DModel",
        tiny=dict(
            in_channels=4,
            out_channels=4,
            num_attention_heads=2,
            attention_head_dim=8,
            num_layers=2,
            num_cross_attention_heads=2,
            cross_attention_head_dim=8,
            cross_attention_dim=16,
            caption_channels=32,
            sample_size=32,
        ),
        published={},
        patch=(1, 1),
        make_inputs=_sana_inputs,
        published_grid=(32, 32),
        notes="Sana-1600M 1024: DC-AE latents (32x down, 1x1 patches: 32 x 32 tokens at 1024), no "
        "positional embedding, ReLU linear self-attention, Gemma text only as cross-attention keys, Mix-FFN "
        "with a 3x3 depthwise conv over the (H, W) token map. Dynamo: one graph.",
    )
)


def _prx_inputs(model, grid, batch, text_tokens, rand):
    return dict(
        hidden_states=_latent(model, grid, batch, rand),
        timestep=_timesteps(model, batch, 0.5),
        encoder_hidden_states=rand(batch, text_tokens, model.config.context_in_dim),
        attention_mask=_ones(model, batch, text_tokens),
    )


register(
    Denoiser(
        name="prx",
        cls="PRXTransformer2DModel",
        tiny=dict(in_channels=4, context_in_dim=32, hidden_size=32, num_heads=2, depth=2, axes_dim=[8, 8]),
        published={},
        patch=(2, 2),
        make_inputs=_prx_inputs,
        published_grid=(64, 64),
        notes="PRX (Flux-VAE variant): linear patchify, 2-D RoPE on image tokens; text enters as extra keys "
        "(keys cat([text, image]), queries image only); gated GELU MLP. Dynamo: one graph.",
    )
)


def _dreamlite_inputs(model, grid, batch, text_tokens, rand):
    return dict(
        hidden_states=_latent(model, grid, batch, rand, patch=1),
        encoder_hidden_states=rand(batch, text_tokens, model.config.cross_attention_dim),
    )


register(
    Denoiser(
        name="dreamlite",
        cls="DreamLiteTransformer2DModel",
        tiny=dict(
            num_attention_heads=2,
            attention_head_dim=16,
            in_channels=32,
            num_layers=2,
            norm_num_groups=8,
            cross_attention_dim=32,
            qk_norm="rms_norm",
            ff_mult=6,
        ),
        published=dict(
            num_attention_heads=20,
            attention_head_dim=64,
            in_channels=1280,
            norm_num_groups=32,
            cross_attention_dim=2048,
            qk_norm="rms_norm",
            ff_mult=6,
        ),
        patch=(1, 1),
        make_inputs=_dreamlite_inputs,
        published_grid=(32, 32),
        notes="The transformer block of DreamLiteUNetModel (the pipeline's denoiser), sized as its "
        "mid-block on the 32 x 32 map of a 1024 image: GroupNorm, 1x1-conv proj_in, self- then "
        "cross-attention with RMS q/k norms, GEGLU FFN. The UNet's 1 KV head needs the UNet's own "
        "processor, so all heads here. Dynamo: one graph with return_dict=False; return_dict=True breaks on "
        "a deprecation warning.",
    )
)


from toma_fx.zoo import image_flux, image_unified  # noqa: E402,F401  (the other families)
