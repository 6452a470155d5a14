"""`toma-fx generate --model PATH --prompt ...` on a pipeline with real text encoders and tokenizers.

Published checkpoints carry CLIP tokenizers and text encoders; this builds them tiny from configs, with a
character-level vocabulary written here (no downloads), saves the whole SDXL pipeline, and generates
from a prompt through the command line, as users do.
"""

import string

import torch
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from toma_fx import cli
from toma_fx.pipelines import build_pipeline, load_pipeline

MAX_TOKENS = 16


def tokenizer() -> CLIPTokenizer:
    """A CLIP BPE tokenizer with no merges: every word is spelled out in characters."""
    letters = list(string.ascii_lowercase)
    vocab = ["<|startoftext|>", "<|endoftext|>", "!", *letters, *[f"{c}</w>" for c in letters]]
    return CLIPTokenizer(
        vocab={t: i for i, t in enumerate(vocab)}, merges=[], pad_token="!", model_max_length=MAX_TOKENS
    )


def text_config(tok: CLIPTokenizer, **extra) -> CLIPTextConfig:
    return CLIPTextConfig(
        vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
        max_position_embeddings=MAX_TOKENS, bos_token_id=0, eos_token_id=1, pad_token_id=2, **extra,
    )  # fmt: skip


def test_generate_from_a_prompt(tmp_path, capsys):
    """The tiny SDXL UNet reads 32 channels of text (16 from each encoder) and a 32-wide pooled
    embedding: the encoders are sized for it, and the command line finds them in the folder."""
    pipe = build_pipeline("sdxl")
    tok = tokenizer()
    torch.manual_seed(0)
    pipe.register_modules(
        tokenizer=tok, tokenizer_2=tok,
        text_encoder=CLIPTextModel(text_config(tok)).eval(),
        text_encoder_2=CLIPTextModelWithProjection(text_config(tok, projection_dim=32)).eval(),
    )  # fmt: skip
    pipe.save_pretrained(tmp_path / "pipe")
    loaded = load_pipeline(tmp_path / "pipe")
    assert loaded.text_encoder is not None and loaded.tokenizer_2 is not None
    assert loaded.tokenizer("a red fox").input_ids[:3] == [0, 3 + 26, 3 + 17]  # <start> a</w> r

    out = tmp_path / "fox.png"
    argv = ["generate", "--model", str(tmp_path / "pipe"), "--prompt", "a red fox in the snow"]
    argv += ["--resolution", "128x128", "--steps", "1", "--min-tokens", "64", "--tile", "4x4"]
    argv += ["--compiler", "aot_eager", "--out", str(out)]
    assert cli.main(argv) == 0
    assert out.is_file() and "128x128, 1 steps" in capsys.readouterr().out
