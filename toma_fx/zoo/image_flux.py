"""Image denoisers on packed latent tokens: Flux and its descendants, HiDream, Qwen-Image and its descendants.

The pipelines pack 2x2 latent patches into one token, `(B, H * W, 4 * C)` in raster order (none when the VAE
already downsamples 16x), and pass position ids next to them (Flux: `(N, 3)` rows `(0, h, w)`; Flux.2:
`(N, 4)` rows `(t, h, w, l)`) or the grid shape (`img_shapes`, Qwen).
"""

from __future__ import annotations

import torch

from toma_fx.architectures import _FLUX
from toma_fx.zoo import Denoiser, register
from toma_fx.zoo.image import _grid_ids, _latent, _ones, _param, _timesteps


def _packed(model, grid, batch, text_tokens, rand, *, text_dim: str = "joint_attention_dim", t: float = 0.5):
    """Packed image tokens, text embeddings and timesteps, the arguments every entry here shares."""
    cfg = model.config
    return dict(
        hidden_states=rand(batch, grid[0] * grid[1], cfg.in_channels),
        encoder_hidden_states=rand(batch, text_tokens, cfg[text_dim]),
        timestep=_timesteps(model, batch, t),
    )


def _with_ids(model, kwargs: dict, img_ids: torch.Tensor, txt_ids: torch.Tensor) -> dict:
    return dict(kwargs, img_ids=img_ids.to(_param(model)), txt_ids=txt_ids.to(_param(model)))


def _flux1_kwargs(model, grid, batch, text_tokens, rand, **packed) -> dict:
    """Flux.1 layout: image ids `(0, h, w)`, text ids all zero."""
    kwargs = _packed(model, grid, batch, text_tokens, rand, **packed)
    return _with_ids(model, kwargs, _grid_ids(grid), torch.zeros(text_tokens, 3))


def _diagonal_text_ids(text_tokens: int) -> torch.Tensor:
    """Text ids `(0, l, l)`: the prompt position on both spatial axes (LongCat-Image, Ovis-Image)."""
    ids = torch.zeros(text_tokens, 3)
    ids[:, 1:] = torch.arange(text_tokens)[:, None]
    return ids


def _flux2_ids(grid, text_tokens) -> tuple[torch.Tensor, torch.Tensor]:
    """Flux.2 layout: image ids `(0, h, w, 0)`, text ids `(0, 0, 0, l)`."""
    txt_ids = torch.zeros(text_tokens, 4)
    txt_ids[:, 3] = torch.arange(text_tokens)
    return _grid_ids(grid, axes=4), txt_ids


# ----------------------------------------------------------------------------------------------------------
# Flux.1 and its forks: double-stream blocks, then single-stream blocks on cat([text, image]).

_FLUX_LIKE_TINY = dict(
    patch_size=1,
    in_channels=16,
    num_layers=1,
    num_single_layers=2,
    attention_head_dim=16,
    num_attention_heads=2,
    joint_attention_dim=32,
    axes_dims_rope=(4, 6, 6),
)


def _flux_inputs(model, grid, batch, text_tokens, rand):
    kwargs = _flux1_kwargs(model, grid, batch, text_tokens, rand)
    kwargs["pooled_projections"] = rand(batch, model.config.pooled_projection_dim)
    if model.config.guidance_embeds:
        kwargs["guidance"] = _timesteps(model, batch, 3.5)
    return kwargs


register(
    Denoiser(
        name="flux",
        cls="FluxTransformer2DModel",
        tiny=_FLUX["tiny"],
        published=_FLUX["full"],
        patch=(2, 2),
        make_inputs=_flux_inputs,
        published_grid=(64, 64),
        text_order="text-image",
        notes="Flux.1-dev: packed 2x2 tokens, ids (N, 3) and zero text ids (L, 3), RoPE (cos, sin) over "
        "cat([text, image]); double blocks join q/k/v, single blocks the hidden states; GELU FFN. Dynamo: "
        "one graph.",
    )
)


def _chroma_inputs(model, grid, batch, text_tokens, rand):
    kwargs = _flux1_kwargs(model, grid, batch, text_tokens, rand)
    kwargs["attention_mask"] = _ones(model, batch, text_tokens + grid[0] * grid[1])  # prompt and image keys
    return kwargs


register(
    Denoiser(
        name="chroma",
        cls="ChromaTransformer2DModel",
        tiny=dict(
            _FLUX_LIKE_TINY, approximator_num_channels=8, approximator_hidden_dim=16, approximator_layers=1
        ),
        published={},
        patch=(2, 2),
        make_inputs=_chroma_inputs,
        published_grid=(64, 64),
        text_order="text-image",
        notes="Chroma: Flux.1 blocks without pooled text, every modulation sliced from one approximator "
        "MLP; the (B, L + N) key mask becomes a (B, 1, S, S) outer-product mask. Dynamo: one graph.",
    )
)


def _bria_inputs(model, grid, batch, text_tokens, rand):
    return _flux1_kwargs(model, grid, batch, text_tokens, rand, t=500)


register(
    Denoiser(
        name="bria",
        cls="BriaTransformer2DModel",
        tiny=_FLUX_LIKE_TINY,
        published={},
        patch=(2, 2),
        make_inputs=_bria_inputs,
        published_grid=(64, 64),
        text_order="text-image",
        notes="Bria 3.2: Flux.1 blocks, no pooled text, timesteps in [0, 1000) unscaled; published = class "
        "defaults (Flux.1 size), unchecked. Dynamo: one graph.",
    )
)


def _bria_fibo_inputs(model, grid, batch, text_tokens, rand):
    cfg = model.config
    kwargs = _flux1_kwargs(model, grid, batch, text_tokens, rand, t=500)
    layers = cfg.num_layers + cfg.num_single_layers  # one text-encoder layer per block
    kwargs["text_encoder_layers"] = [rand(batch, text_tokens, cfg.text_encoder_dim) for _ in range(layers)]
    return kwargs


register(
    Denoiser(
        name="bria-fibo",
        cls="BriaFiboTransformer2DModel",
        tiny=dict(_FLUX_LIKE_TINY, joint_attention_dim=64, text_encoder_dim=32),
        published=dict(in_channels=48),
        patch=(1, 1),
        make_inputs=_bria_fibo_inputs,
        published_grid=(64, 64),
        text_order="text-image",
        notes="FIBO: Wan 2.2 VAE latents (16x down, 48 channels, not packed); Flux.1 blocks whose text "
        "stream has half its channels replaced by a projected text-encoder layer before each block. Dynamo: "
        "one graph.",
    )
)


def _longcat_inputs(model, grid, batch, text_tokens, rand):
    """LongCat-Image: text ids `(0, l, l)`, image ids `(1, 512 + h, 512 + w)` (512: the prompt length)."""
    kwargs = _packed(model, grid, batch, text_tokens, rand)
    return _with_ids(model, kwargs, _grid_ids(grid, first=1, start=512), _diagonal_text_ids(text_tokens))


register(
    Denoiser(
        name="longcat-image",
        cls="LongCatImageTransformer2DModel",
        tiny=dict(_FLUX_LIKE_TINY, pooled_projection_dim=32),
        published={},
        patch=(2, 2),
        make_inputs=_longcat_inputs,
        published_grid=(64, 64),
        text_order="text-image",
        notes="LongCat-Image: Flux.1 blocks; ids (N, 3) with a modality axis, image rows offset past the "
        "512-token prompt; published = class defaults, unchecked. Dynamo: one graph.",
    )
)


def _ovis_inputs(model, grid, batch, text_tokens, rand):
    kwargs = _packed(model, grid, batch, text_tokens, rand)
    return _with_ids(model, kwargs, _grid_ids(grid), _diagonal_text_ids(text_tokens))


register(
    Denoiser(
        name="ovis-image",
        cls="OvisImageTransformer2DModel",
        tiny=dict(_FLUX_LIKE_TINY, out_channels=16),
        published={},
        patch=(2, 2),
        make_inputs=_ovis_inputs,
        published_grid=(64, 64),
        text_order="text-image",
        notes="Ovis-Image: Flux.1 blocks with SwiGLU FFNs and RMS-normed text input; text ids (0, l, l). "
        "Dynamo: one graph.",
    )
)


# ----------------------------------------------------------------------------------------------------------
# Flux.2 and Flux.3: 4-axis ids, SwiGLU, modulations shared by all blocks of a kind.


def _flux2_inputs(model, grid, batch, text_tokens, rand):
    kwargs = _packed(model, grid, batch, text_tokens, rand)
    img_ids, txt_ids = _flux2_ids(grid, text_tokens)
    kwargs = _with_ids(model, kwargs, img_ids.expand(batch, -1, -1), txt_ids.expand(batch, -1, -1))
    if model.config.guidance_embeds:
        kwargs["guidance"] = _timesteps(model, batch, 4.0)
    return kwargs


register(
    Denoiser(
        name="flux2",
        cls="Flux2Transformer2DModel",
        tiny=dict(
            patch_size=1,
            in_channels=16,
            num_layers=1,
            num_single_layers=2,
            attention_head_dim=16,
            num_attention_heads=2,
            joint_attention_dim=32,
            axes_dims_rope=(4, 4, 4, 4),
        ),
        published={},
        mid=dict(
            patch_size=1,
            in_channels=128,
            num_layers=2,
            num_single_layers=4,
            attention_head_dim=64,
            num_attention_heads=8,
            joint_attention_dim=512,
            axes_dims_rope=(16, 16, 16, 16),
        ),  # fmt: skip
        patch=(2, 2),
        make_inputs=_flux2_inputs,
        published_grid=(64, 64),
        text_order="text-image",
        notes="Flux.2-dev: packed 2x2 tokens of the 32-channel VAE, ids (B, N, 4) and (B, L, 4) as the "
        "pipeline passes them (the model reads row 0); parallel fused QKV+MLP single blocks, SwiGLU; one "
        "modulation per block kind. Dynamo: one graph.",
    )
)


def _flux3_inputs(model, grid, batch, text_tokens, rand):
    kwargs = _packed(model, grid, batch, text_tokens, rand)
    return _with_ids(model, kwargs, *_flux2_ids(grid, text_tokens))


register(
    Denoiser(
        name="flux3",
        cls="Flux3Transformer2DModel",
        tiny=dict(
            in_channels=16,
            cond_in_channels=16,
            num_layers=1,
            num_single_layers=2,
            attention_head_dim=16,
            num_attention_heads=2,
            joint_attention_dim=32,
            timestep_channels=32,
            axes_dims_rope=(4, 4, 4, 4),
        ),
        published={},
        patch=(2, 2),
        make_inputs=_flux3_inputs,
        published_grid=(64, 64),
        text_order="text-image",
        notes="Flux.3 (no pipeline in diffusers): per-mode blocks (text and image attend within "
        "themselves), then single blocks on cat([text, image]); per-token (B, S, dim) modulations. Dynamo: "
        "one graph.",
    )
)


# ----------------------------------------------------------------------------------------------------------
# HiDream-I1: MoE MMDiT with per-block Llama layers.


def _hidream_inputs(model, grid, batch, text_tokens, rand):
    cfg = model.config
    t5_dim, llama_dim = cfg.caption_channels
    llama_stack = max(cfg.llama_layers) + 1  # the pipeline passes every Llama layer; blocks pick theirs
    return dict(
        hidden_states=_latent(model, grid, batch, rand, patch=cfg.patch_size),
        timesteps=_timesteps(model, batch, 500),
        encoder_hidden_states_t5=rand(batch, text_tokens, t5_dim),
        encoder_hidden_states_llama3=rand(llama_stack, batch, text_tokens, llama_dim),
        pooled_embeds=rand(batch, cfg.text_emb_dim),
    )


register(
    Denoiser(
        name="hidream",
        cls="HiDreamImageTransformer2DModel",
        tiny=dict(
            patch_size=2,
            in_channels=4,
            out_channels=4,
            num_layers=1,
            num_single_layers=2,
            attention_head_dim=16,
            num_attention_heads=2,
            caption_channels=[16, 16],
            text_emb_dim=16,
            num_routed_experts=4,
            num_activated_experts=2,
            axes_dims_rope=(8, 4, 4),
            max_resolution=(48, 48),
            llama_layers=[0, 1, 1],
            force_inference_output=True,
        ),
        published=dict(
            patch_size=2,
            in_channels=16,
            out_channels=16,
            caption_channels=[4096, 4096],
            axes_dims_rope=(64, 32, 32),
            llama_layers=[*range(32), *[31] * 16],
        ),
        patch=(2, 2),
        make_inputs=_hidream_inputs,
        published_grid=(64, 64),
        text_order="image-text",
        notes="HiDream-I1: 4-D latent patchified inside; non-square grids are zero-padded to max_resolution "
        "tokens with a key mask; joint sequence [image, T5, Llama] with a fresh Llama layer per block; MoE "
        "SwiGLU (top-2 of 4 + shared). Dynamo: 19 graphs (bincount().cpu() routing, int(img_sizes)).",
    )
)


# ----------------------------------------------------------------------------------------------------------
# Qwen-Image and descendants: RoPE built inside from `img_shapes`.


def _qwen_inputs(model, grid, batch, text_tokens, rand):
    kwargs = _packed(model, grid, batch, text_tokens, rand)
    kwargs["encoder_hidden_states_mask"] = _ones(model, batch, text_tokens, dtype=torch.long)
    kwargs["img_shapes"] = [[(1, *grid)]] * batch
    return kwargs


register(
    Denoiser(
        name="qwen-image",
        cls="QwenImageTransformer2DModel",
        tiny=dict(
            patch_size=2,
            in_channels=16,
            out_channels=4,
            num_layers=2,
            attention_head_dim=16,
            num_attention_heads=2,
            joint_attention_dim=32,
            axes_dims_rope=(8, 4, 4),
        ),
        published={},
        mid=dict(
            patch_size=2,
            in_channels=64,
            out_channels=16,
            num_layers=4,
            attention_head_dim=64,
            num_attention_heads=8,
            joint_attention_dim=512,
            axes_dims_rope=(16, 24, 24),
        ),  # fmt: skip
        patch=(2, 2),
        make_inputs=_qwen_inputs,
        published_grid=(64, 64),
        text_order="text-image",
        notes="Qwen-Image: packed 2x2 tokens, img_shapes [(1, H, W)] per sample; complex 3-axis RoPE "
        "centred on the image, text positions after it; double-stream blocks, text first. Dynamo: one "
        "graph.",
    )
)


def _nucleus_inputs(model, grid, batch, text_tokens, rand):
    kwargs = _qwen_inputs(model, grid, batch, text_tokens, rand)
    kwargs["img_shapes"] = [(1, *grid)] * batch
    return kwargs


register(
    Denoiser(
        name="nucleus-moe",
        cls="NucleusMoEImageTransformer2DModel",
        tiny=dict(
            patch_size=2,
            in_channels=16,
            out_channels=4,
            num_layers=2,
            attention_head_dim=16,
            num_attention_heads=2,
            joint_attention_dim=32,
            axes_dims_rope=(8, 4, 4),
            dense_moe_strategy="leave_first_block_dense",
            num_experts=4,
            moe_intermediate_dim=32,
            capacity_factors=2.0,
        ),
        published={},
        patch=(2, 2),
        make_inputs=_nucleus_inputs,
        published_grid=(64, 64),
        notes="NucleusMoE-Image: Qwen-style RoPE; image queries attend to cat([image, text]) keys, text is "
        "never updated; expert-choice MoE with capacity proportional to the token count. Dynamo: one graph.",
    )
)


def _qwen21_inputs(model, grid, batch, text_tokens, rand):
    """Qwen-Image 2.1 text-to-image: `img_mask` marks a slot per 4 target tokens, after the prompt."""
    n = grid[0] * grid[1]
    kwargs = _packed(model, grid, batch, text_tokens, rand, text_dim="context_in_dim")
    slots = torch.zeros(batch, text_tokens + n // 4, dtype=torch.bool, device=_param(model).device)
    slots[:, text_tokens:] = True
    kwargs.update(
        img_shapes=[[(1, *grid)]] * batch,
        img_mask=slots,
        encoder_hidden_states_mask=_ones(model, batch, text_tokens, dtype=torch.long),
    )
    return kwargs


register(
    Denoiser(
        name="qwen-image-2.1",
        cls="QwenImage21Transformer2DModel",
        tiny=dict(
            in_channels=16,
            out_channels=16,
            num_layers=2,
            attention_head_dim=16,
            num_attention_heads=2,
            context_in_dim=32,
            axes_dims_rope=(4, 6, 6),
        ),
        published={},
        patch=(1, 1),
        make_inputs=_qwen21_inputs,
        published_grid=(64, 64),
        text_order="text-image",
        notes="Qwen-Image 2.1: 16x VAE, 1x1 tokens; one stream laid out like the VL prompt, image tokens "
        "scattered into 4-fold expanded slots by boolean indexing (token count must divide by 4); "
        "block-causal attention per prefix segment; output covers all L + N rows. Dynamo: 11 graphs "
        "(tolist, nonzero, repeat_interleave).",
    )
)
