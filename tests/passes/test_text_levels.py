"""A text input whose token count equals a smaller level of the call's grid is still text.

Block graphs of a regional compile see `(B, L, C)` token inputs and take their grid from the call by
count, with the halved levels a UNet needs. Flux's 256 text tokens equal the 16x16 level of a 64x64
latent: counted alone, the text MLP would be merged as an image and the joint attention refused.
"""

import torch

import toma_fx
from toma_fx.pipelines import build_pipeline


def test_text_as_long_as_a_smaller_level_is_never_merged():
    transformer = build_pipeline("flux").transformer
    D = transformer.inner_dim
    text, grid = 16, (8, 8)  # 16 = the 4x4 level of the 8x8 grid
    image_ids = torch.stack(
        torch.meshgrid(torch.zeros(1), torch.arange(8.0), torch.arange(8.0), indexing="ij"), -1
    )
    ids = torch.cat([torch.zeros(text, 3), image_ids.reshape(64, 3)])
    report = toma_fx.explain(
        transformer.transformer_blocks[0],
        hidden_states=torch.randn(1, 64, D), encoder_hidden_states=torch.randn(1, text, D),
        temb=torch.randn(1, D), image_rotary_emb=transformer.pos_embed(ids),
        config=toma_fx.ToMAConfig(min_tokens=4, tile=(4, 4)), call_grid=grid,
    )  # fmt: skip
    merged = {r.path: (r.kind, r.tokens) for r in report.regions}
    assert merged == {"attn": ("joint", 64), "ff": ("mlp", 64)}
    (skip,) = [s for s in report.skipped if s.path == "ff_context"]
    assert "fewer than another token input's on the grid (64)" in skip.why
