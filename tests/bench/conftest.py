"""Tiny DINO and CLIP models saved to local folders, for the semantic scores and the pipeline benchmark."""

import string

import pytest
import torch
from transformers import (
    BitImageProcessor,
    CLIPConfig,
    CLIPImageProcessor,
    CLIPModel,
    CLIPProcessor,
    CLIPTokenizer,
    Dinov2Config,
    Dinov2Model,
    ViTConfig,
    ViTImageProcessor,
    ViTModel,
)

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
VISION = dict(TINY, image_size=32, patch_size=8)


@pytest.fixture(scope="session")
def semantic_folders(tmp_path_factory):
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("semantic")
    crop = {"height": 32, "width": 32}

    Dinov2Model(Dinov2Config(**VISION)).save_pretrained(root / "dinov2")
    BitImageProcessor(size={"shortest_edge": 32}, crop_size=crop).save_pretrained(root / "dinov2")

    # Like facebook/dino-vitb16: a ViT saved without a pooler.
    ViTModel(ViTConfig(**VISION), add_pooling_layer=False).save_pretrained(root / "vit")
    ViTImageProcessor(size=crop).save_pretrained(root / "vit")

    # Letters only, no merges: every prompt of lowercase words tokenizes offline.
    letters = list(string.ascii_lowercase)
    specials = ["<|startoftext|>", "<|endoftext|>"]
    vocab = {t: i for i, t in enumerate(specials + letters + [c + "</w>" for c in letters])}
    text = dict(
        TINY,
        vocab_size=len(vocab),
        max_position_embeddings=16,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )
    config = CLIPConfig(text_config=text, vision_config=VISION, projection_dim=16)
    CLIPModel(config).save_pretrained(root / "clip")
    CLIPProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size=crop),
        tokenizer=CLIPTokenizer(vocab=vocab, merges=[]),
    ).save_pretrained(root / "clip")
    (root / "empty").mkdir()
    return root
