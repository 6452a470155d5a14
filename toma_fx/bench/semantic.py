"""Semantic fidelity of generated images: DINO and CLIP embeddings of a merged run against the plain one.

- `DinoScorer.similarity`: mean cosine of the DINO CLS embeddings of paired images, in [-1, 1]; 1.0 for
  identical images. DINO is trained to tell instances apart, so it drops when content or layout changes.
- `ClipScorer.image_similarity` (CLIP-I): the same with CLIP image embeddings; 1.0 for identical images.
- `ClipScorer.text_score` (CLIP-T): CLIPScore of Hessel et al. 2021 on the 100 scale torchmetrics uses (the
  paper weighs by 2.5), 100 * mean(max(cos(image, prompt), 0)), in [0, 100]; real CLIP models give roughly
  20-35 for matching prompts.

Images are float tensors `(B, 3, H, W)` in [0, 1], on any device and dtype; embeddings are `(B, D)` float32,
unit norm. Weights come from local transformers folders only, downloaded elsewhere, for instance
`huggingface-cli download facebook/dinov2-base --local-dir models/dinov2-base` (or facebook/dino-vitb16,
openai/clip-vit-large-patch14); nothing is fetched from a hub here.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoImageProcessor, AutoModel, CLIPModel, CLIPProcessor

__all__ = ["ClipScorer", "DinoScorer"]

_DINO_TYPES = ("dinov2", "dinov2_with_registers", "vit")


def _model_folder(path: str | Path, what: str, accepted: tuple[str, ...]) -> tuple[Path, str]:
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise ValueError(
            f"{what} model path '{path}' is not a local transformers model folder (no config.json)"
        )
    model_type = AutoConfig.from_pretrained(folder, local_files_only=True).model_type
    if model_type not in accepted:
        raise ValueError(
            f"{what} model path '{path}' holds a '{model_type}' model; accepted types: {', '.join(accepted)}"
        )
    return folder, model_type


def _check_images(images: torch.Tensor, name: str) -> None:
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3 or len(images) == 0:
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"{name} must be a (B, 3, H, W) tensor in [0, 1] with B >= 1, got {got}")


def _check_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    _check_images(a, "a")
    _check_images(b, "b")
    if len(a) != len(b):
        raise ValueError(
            f"a and b must hold the same number of images (paired by index), got {len(a)} and {len(b)}"
        )


def _pixels(processor, images: torch.Tensor, device: torch.device) -> torch.Tensor:
    # Without torchvision, transformers falls back to PIL processors, which resize through 8-bit images:
    # they refuse values outside [0, 1] (noised or overshooting images) from deep inside, so saturate here.
    images = images.detach().to("cpu", torch.float32).clamp(0, 1)
    return processor(images=list(images), do_rescale=False, return_tensors="pt")["pixel_values"].to(device)


def _features(out) -> torch.Tensor:
    # transformers 5 returns a BaseModelOutputWithPooling holding the projected embedding as pooler_output;
    # 4.x returned the tensor itself.
    return F.normalize((out if isinstance(out, torch.Tensor) else out.pooler_output).float(), dim=-1)


class DinoScorer:
    """DINO image similarity: cosine of the CLS embeddings of paired images."""

    def __init__(self, path: str | Path, device: str | torch.device = "cpu"):
        folder, model_type = _model_folder(path, "dino", _DINO_TYPES)
        self.device = torch.device(device)
        self.processor = AutoImageProcessor.from_pretrained(folder, local_files_only=True)
        # The embedding is the CLS token, and DINO v1 checkpoints are converted without ViT's pooler:
        # building one would only add untrained weights and a missing-weights report.
        extra = {"add_pooling_layer": False} if model_type == "vit" else {}
        model = AutoModel.from_pretrained(folder, local_files_only=True, dtype=torch.float32, **extra)
        self.model = model.to(self.device).eval()

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        _check_images(images, "images")
        hidden = self.model(pixel_values=_pixels(self.processor, images, self.device)).last_hidden_state
        return F.normalize(hidden[:, 0].float(), dim=-1)

    def similarity(self, a: torch.Tensor, b: torch.Tensor) -> float:
        _check_pair(a, b)
        return (self.embed(a) * self.embed(b)).sum(-1).mean().item()


class ClipScorer:
    """CLIP: image-image similarity to a baseline (CLIP-I) and CLIPScore against prompts (CLIP-T)."""

    def __init__(self, path: str | Path, device: str | torch.device = "cpu"):
        folder, _ = _model_folder(path, "clip", ("clip",))
        self.device = torch.device(device)
        self.processor = CLIPProcessor.from_pretrained(folder, local_files_only=True)
        model = CLIPModel.from_pretrained(folder, local_files_only=True, dtype=torch.float32)
        self.model = model.to(self.device).eval()

    @torch.no_grad()
    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        _check_images(images, "images")
        pixels = _pixels(self.processor.image_processor, images, self.device)
        return _features(self.model.get_image_features(pixel_values=pixels))

    @torch.no_grad()
    def embed_texts(self, prompts: list[str]) -> torch.Tensor:
        # The text tower has a fixed context (77 tokens for OpenAI's CLIP) that a tokenizer's own
        # model_max_length does not always state; longer prompts are cut, as in CLIPScore.
        context = self.model.config.text_config.max_position_embeddings
        tokenizer = self.processor.tokenizer
        tokens = tokenizer(prompts, padding=True, truncation=True, max_length=context, return_tensors="pt")
        return _features(self.model.get_text_features(**tokens.to(self.device)))

    def image_similarity(self, a: torch.Tensor, b: torch.Tensor) -> float:
        _check_pair(a, b)
        return (self.embed_images(a) * self.embed_images(b)).sum(-1).mean().item()

    def text_score(self, images: torch.Tensor, prompts: list[str]) -> float:
        _check_images(images, "images")
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        if len(prompts) not in (1, len(images)) or not all(isinstance(p, str) for p in prompts):
            raise ValueError(
                f"prompts must be {len(images)} strings (one per image) or 1 to broadcast, got {len(prompts)}"
            )
        cos = (self.embed_images(images) * self.embed_texts(prompts)).sum(-1)  # (1, D) broadcasts over B
        return 100 * cos.clamp(min=0).mean().item()
