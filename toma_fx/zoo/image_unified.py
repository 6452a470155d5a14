"""Image denoisers that run text and image tokens as one sequence, most after per-modality refiner blocks.

Lumina, Z-Image, FIBO 2, OmniGen, ERNIE-Image, Ideogram 4, Krea 2 and HunyuanImage 2.1. Several build the
joint sequence, its masks and its RoPE inside from per-sample lengths, so they take plain latents and prompts.
"""

from __future__ import annotations

import torch

from toma_fx.zoo import Denoiser, register
from toma_fx.zoo.image import _grid_ids, _latent, _ones, _param, _timesteps


def _prompt(model, batch: int, text_tokens: int, rand, dim: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Text embeddings `model.config[dim]` wide and their all-valid mask."""
    return rand(batch, text_tokens, model.config[dim]), _ones(model, batch, text_tokens)


# ----------------------------------------------------------------------------------------------------------
# Lumina-Next, Lumina-Image 2.0, Z-Image: Llama-style DiTs (GQA, q/k norms, SwiGLU, sandwich norms).


def _lumina_next_inputs(model, grid, batch, text_tokens, rand):
    from diffusers.models.embeddings import get_2d_rotary_pos_embed_lumina

    text, mask = _prompt(model, batch, text_tokens, rand, "cross_attention_dim")
    return dict(
        hidden_states=_latent(model, grid, batch, rand),
        timestep=_timesteps(model, batch, 0.5),
        encoder_hidden_states=text,
        encoder_mask=mask,
        image_rotary_emb=get_2d_rotary_pos_embed_lumina(model.head_dim, 384, 384),  # the pipeline's table
        cross_attention_kwargs={},
    )


register(
    Denoiser(
        name="lumina-next",
        cls="LuminaNextDiT2DModel",
        tiny=dict(
            sample_size=16,
            in_channels=4,
            hidden_size=32,
            num_layers=2,
            num_attention_heads=2,
            num_kv_heads=1,
            multiple_of=16,
            cross_attention_dim=32,
        ),
        published=dict(num_layers=24, num_kv_heads=8),
        patch=(2, 2),
        make_inputs=_lumina_next_inputs,
        published_grid=(64, 64),
        notes="Lumina-Next-SFT: linear patchify; the pipeline's complex 2-D RoPE table (384 x 384) cropped "
        "inside; Gemma text only as a tanh-gated cross-attention added to the self-attention; learned "
        "sigma. Dynamo: one graph.",
    )
)


def _lumina2_inputs(model, grid, batch, text_tokens, rand):
    text, mask = _prompt(model, batch, text_tokens, rand, "cap_feat_dim")
    return dict(
        hidden_states=_latent(model, grid, batch, rand),
        timestep=_timesteps(model, batch, 0.5),
        encoder_hidden_states=text,
        encoder_attention_mask=mask,
    )


register(
    Denoiser(
        name="lumina2",
        cls="Lumina2Transformer2DModel",
        tiny=dict(
            sample_size=16,
            in_channels=4,
            hidden_size=32,
            num_layers=2,
            num_refiner_layers=1,
            num_attention_heads=2,
            num_kv_heads=1,
            multiple_of=16,
            axes_dim_rope=(8, 4, 4),
            axes_lens=(128, 64, 64),
            cap_feat_dim=32,
        ),
        published=dict(cap_feat_dim=2304),
        patch=(2, 2),
        make_inputs=_lumina2_inputs,
        published_grid=(64, 64),
        text_order="text-image",
        notes="Lumina-Image 2.0 (Gemma-2 2B text, 2304 wide): noise and context refiners, then a "
        "zero-padded joint buffer [text, image] filled per sample by slice assignment from the mask "
        "lengths. Dynamo: 4 graphs (mask.sum().tolist()).",
    )
)


def _z_image_inputs(model, grid, batch, text_tokens, rand):
    """Z-Image: lists of per-sample `(C, 1, H, W)` latents and `(L, D)` prompts, timesteps in [0, 1]."""
    return dict(
        x=[_latent(model, grid, 1, rand)[0, :, None] for _ in range(batch)],
        t=_timesteps(model, batch, 0.5),
        cap_feats=[rand(text_tokens, model.config.cap_feat_dim) for _ in range(batch)],
    )


register(
    Denoiser(
        name="z-image",
        cls="ZImageTransformer2DModel",
        tiny=dict(
            in_channels=4,
            dim=32,
            n_layers=2,
            n_refiner_layers=1,
            n_heads=2,
            n_kv_heads=2,
            cap_feat_dim=32,
            axes_dims=[8, 4, 4],
            axes_lens=[256, 64, 64],
        ),
        published={},
        patch=(2, 2),
        make_inputs=_z_image_inputs,
        published_grid=(64, 64),
        text_order="image-text",
        notes="Z-Image: lists of per-sample latents and prompts in and out; image and caption each padded "
        "to a multiple of 32 with pad tokens, refined apart, then one [image, text] stream per sample "
        "padded to the batch. Dynamo: one graph.",
    )
)


# ----------------------------------------------------------------------------------------------------------
# FIBO 2: gist tokens from a Perceiver over the prompt; cross-attention injection blocks.


def _bria_fibo2_inputs(model, grid, batch, text_tokens, rand):
    cfg = model.config
    bundles = 1 + len(cfg.injection_layer_ids)  # the Perceiver's layer, then one per injection block
    return dict(
        hidden_states=_latent(model, grid, batch, rand),
        timestep=_timesteps(model, batch, 0.5),
        encoder_hidden_states=rand(batch, bundles, text_tokens, cfg.cap_feat_dim),
        encoder_attention_mask=_ones(model, batch, text_tokens),
    )


register(
    Denoiser(
        name="bria-fibo2",
        cls="BriaFibo2Transformer2DModel",
        tiny=dict(
            in_channels=4,
            dim=32,
            n_layers=2,
            n_refiner_layers=1,
            n_heads=2,
            cap_feat_dim=32,
            injection_layer_ids=(1,),
            perceiver_num_layers=1,
            min_num_gist_tokens=4,
            max_num_gist_tokens=8,
            gist_step=4,
            gist_min_text_len=4,
            gist_max_text_len=16,
            axes_dims=(8, 4, 4),
            axes_lens=(64, 64, 64),
        ),
        published={},
        patch=(2, 2),
        make_inputs=_bria_fibo2_inputs,
        published_grid=(64, 64),
        text_order="text-image",
        notes="FIBO 2: noise refiner on the image tokens; a Perceiver turns the prompt into gist tokens "
        "(count from the prompt length); one [gist, image] stream, text cross-attention in injection "
        "blocks. Dynamo: 2 graphs (mask.sum().tolist()).",
    )
)


# ----------------------------------------------------------------------------------------------------------
# OmniGen: a Phi-3 LLM over [prompt tokens, time token, image tokens].


def _omnigen_inputs(model, grid, batch, text_tokens, rand):
    """Text-to-image OmniGen: causal mask over prompt and time token, image rows attend to everything."""
    device = _param(model).device
    n = grid[0] * grid[1]
    seq = text_tokens + 1 + n
    mask = torch.ones(seq, seq, device=device).tril()
    mask[text_tokens + 1 :] = 1
    return dict(
        hidden_states=_latent(model, grid, batch, rand),
        timestep=_timesteps(model, batch, 0.5),
        input_ids=torch.arange(text_tokens, device=device).expand(batch, -1) + 1,  # any ids but the pad id 0
        input_img_latents=[],
        input_image_sizes={},
        attention_mask=mask.expand(batch, -1, -1),
        position_ids=torch.arange(seq, device=device).expand(batch, -1),
    )


def _omnigen_kwargs(head_dim: int, **config) -> dict:
    # the checkpoint's Phi-3 "su" factors only rescale RoPE frequencies; unit factors keep the architecture
    factors = [1.0] * (head_dim // 2)
    return dict(config, rope_scaling={"type": "su", "long_factor": factors, "short_factor": factors})


register(
    Denoiser(
        name="omnigen",
        cls="OmniGenTransformer2DModel",
        tiny=_omnigen_kwargs(
            16,
            hidden_size=32,
            num_attention_heads=2,
            num_key_value_heads=2,
            intermediate_size=64,
            num_layers=2,
            pad_token_id=0,
            vocab_size=100,
            time_step_dim=16,
        ),
        published=_omnigen_kwargs(96),
        patch=(2, 2),
        make_inputs=_omnigen_inputs,
        published_grid=(64, 64),
        text_order="text-image",
        notes="OmniGen v1: Phi-3 decoder over [prompt, time token, image] with the pipeline's causal-prompt "
        "mask, 1-D RoPE from position_ids, sin-cos patch positions; rope_scaling factors set to 1. Dynamo: "
        "4 graphs (a branch on position_ids.max()).",
    )
)


# ----------------------------------------------------------------------------------------------------------
# ERNIE-Image, Ideogram 4, Krea 2: one stream from the first block.


def _ernie_inputs(model, grid, batch, text_tokens, rand):
    return dict(
        hidden_states=_latent(model, grid, batch, rand, patch=1),
        timestep=_timesteps(model, batch, 500),
        text_bth=rand(batch, text_tokens, model.config.text_in_dim),
        text_lens=torch.full((batch,), text_tokens, device=_param(model).device),
    )


register(
    Denoiser(
        name="ernie-image",
        cls="ErnieImageTransformer2DModel",
        tiny=dict(
            hidden_size=32,
            num_attention_heads=2,
            num_layers=2,
            ffn_hidden_size=64,
            in_channels=16,
            out_channels=16,
            text_in_dim=32,
            rope_axes_dim=(8, 4, 4),
        ),
        published={},
        patch=(2, 2),
        make_inputs=_ernie_inputs,
        published_grid=(64, 64),
        text_order="image-text",
        notes="ERNIE-Image: the pipeline 2x2-patchifies the 32-channel latent into a (B, 128, H, W) map; "
        "sequence-first (S, B, D) stream [image, text] with a key padding mask; modulations expanded "
        "to (S, B, D). Dynamo: one graph.",
    )
)


def _ideogram4_inputs(model, grid, batch, text_tokens, rand):
    """Ideogram 4: one [text, image] sequence; the latent is 0 on text rows, the prompt on image rows."""
    from diffusers.models.transformers.transformer_ideogram4 import (
        IMAGE_POSITION_OFFSET,
        LLM_TOKEN_INDICATOR,
        OUTPUT_IMAGE_INDICATOR,
    )

    cfg = model.config
    device = _param(model).device
    n = grid[0] * grid[1]
    text_pos = torch.arange(text_tokens)[:, None].expand(-1, 3)
    positions = torch.cat([text_pos, _grid_ids(grid).long() + IMAGE_POSITION_OFFSET]).to(device)
    indicator = torch.tensor(
        [LLM_TOKEN_INDICATOR] * text_tokens + [OUTPUT_IMAGE_INDICATOR] * n, device=device
    )
    hidden = rand(batch, text_tokens + n, cfg.in_channels)
    hidden[:, :text_tokens] = 0
    text = rand(batch, text_tokens + n, cfg.llm_features_dim)
    text[:, text_tokens:] = 0
    return dict(
        hidden_states=hidden,
        timestep=_timesteps(model, batch, 0.5),
        encoder_hidden_states=text,
        position_ids=positions.expand(batch, -1, -1),
        segment_ids=_ones(model, batch, text_tokens + n, dtype=torch.long),
        indicator=indicator.expand(batch, -1),
    )


register(
    Denoiser(
        name="ideogram4",
        cls="Ideogram4Transformer2DModel",
        tiny=dict(
            in_channels=16,
            num_layers=2,
            attention_head_dim=16,
            num_attention_heads=2,
            intermediate_size=64,
            adaln_dim=16,
            llm_features_dim=32,
            mrope_section=(4, 2, 2),
        ),
        published={},
        patch=(2, 2),
        make_inputs=_ideogram4_inputs,
        published_grid=(64, 64),
        text_order="text-image",
        notes="Ideogram 4: latent and prompt both come as (B, L + N, C) sequences, zero where the other "
        "modality sits; indicator and segment ids pick rows; 3-axis MRoPE, image positions offset by 65536; "
        "output covers all L + N rows. Dynamo: one graph.",
    )
)


def _krea2_inputs(model, grid, batch, text_tokens, rand):
    cfg = model.config
    positions = torch.cat([torch.zeros(text_tokens, 3), _grid_ids(grid)])  # text at the origin
    return dict(
        hidden_states=rand(batch, grid[0] * grid[1], cfg.in_channels),
        encoder_hidden_states=rand(batch, text_tokens, cfg.num_text_layers, cfg.text_hidden_dim),
        timestep=_timesteps(model, batch, 0.5),
        position_ids=positions.to(_param(model)),
        encoder_attention_mask=_ones(model, batch, text_tokens),
    )


register(
    Denoiser(
        name="krea2",
        cls="Krea2Transformer2DModel",
        tiny=dict(
            in_channels=16,
            num_layers=2,
            attention_head_dim=16,
            num_attention_heads=2,
            num_key_value_heads=1,
            intermediate_size=64,
            timestep_embed_dim=16,
            text_hidden_dim=16,
            num_text_layers=3,
            text_num_attention_heads=2,
            text_num_key_value_heads=1,
            text_intermediate_size=32,
            num_layerwise_text_blocks=1,
            num_refiner_text_blocks=1,
            axes_dims_rope=(8, 4, 4),
        ),
        published={},
        patch=(2, 2),
        make_inputs=_krea2_inputs,
        published_grid=(64, 64),
        text_order="text-image",
        notes="Krea 2: packed 2x2 tokens; a text-fusion stack mixes the stacked Qwen3-VL layers, then one "
        "[text, image] stream of GQA blocks; position_ids (L + N, 3) with text at the origin. Dynamo: one "
        "graph.",
    )
)


# ----------------------------------------------------------------------------------------------------------
# HunyuanImage 2.1: 32x VAE, double and single blocks, byT5 glyph text reordered per sample.


def _hunyuan_image_inputs(model, grid, batch, text_tokens, rand):
    text, mask = _prompt(model, batch, text_tokens, rand, "text_embed_dim")
    glyphs, glyph_mask = _prompt(model, batch, text_tokens, rand, "text_embed_2_dim")
    return dict(
        hidden_states=_latent(model, grid, batch, rand, patch=1),
        timestep=_timesteps(model, batch, 500),
        encoder_hidden_states=text,
        encoder_attention_mask=mask,
        encoder_hidden_states_2=glyphs,
        encoder_attention_mask_2=glyph_mask,
    )


register(
    Denoiser(
        name="hunyuan-image",
        cls="HunyuanImageTransformer2DModel",
        tiny=dict(
            in_channels=4,
            out_channels=4,
            num_attention_heads=2,
            attention_head_dim=16,
            num_layers=1,
            num_single_layers=2,
            num_refiner_layers=1,
            text_embed_dim=32,
            text_embed_2_dim=16,
            rope_axes_dim=(8, 8),
        ),
        published=dict(text_embed_2_dim=1472),
        patch=(1, 1),
        make_inputs=_hunyuan_image_inputs,
        published_grid=(64, 64),
        text_order="image-text",
        notes="HunyuanImage 2.1 at 2048 x 2048 (32x VAE, 1x1 patches): conv patchify, token refiner on the "
        "Qwen text, [image, text] joint attention; byT5 and Qwen text reordered per sample by boolean "
        "masks. Dynamo: 9 graphs (the reorder loop runs eager).",
    )
)
