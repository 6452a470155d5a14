"""Trained proxy weights on disk: a diffusers model folder, the prompts, and the training report.

    folder/
        denoiser/            `save_pretrained` of the diffusers model (config.json + safetensors, float16)
        prompts.safetensors  the learned prompt embeddings (`models.Prompts`)
        report.json          how it was trained, and its held-out loss before and after

The trained proxies ship inside the package (`WEIGHTS / <arch>`), so everything that uses them runs
offline; `load` reads them with `from_pretrained`, as a user's local checkpoint would be read.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from toma_fx.proxies.data import TRAIN
from toma_fx.proxies.models import PROXIES

__all__ = ["STORED_DTYPE", "WEIGHTS", "load", "round_to_stored", "save"]

WEIGHTS = Path(__file__).parent / "weights"
STORED_DTYPE = torch.float16
"""Weights are stored in half precision (a few MB per proxy); `train` scores the rounded weights, so the
reported loss is that of the shipped model."""


def round_to_stored(*modules: torch.nn.Module) -> None:
    """Round every parameter to `STORED_DTYPE` and back, in place: the values `save` then writes."""
    with torch.no_grad():
        for module in modules:
            for p in module.parameters():
                p.copy_(p.to(STORED_DTYPE))


def save(folder: Path, model: torch.nn.Module, prompts: torch.nn.Module, report: dict) -> None:
    """Write `model` and `prompts` in `STORED_DTYPE` (round them first with `round_to_stored` to keep
    what is scored and what is shipped the same) and the training report into `folder`."""
    folder = Path(folder)
    copy.deepcopy(model).to(STORED_DTYPE).save_pretrained(folder / "denoiser")
    save_file({k: v.to(STORED_DTYPE).contiguous() for k, v in prompts.state_dict().items()},
              folder / "prompts.safetensors")  # fmt: skip
    (folder / "report.json").write_text(json.dumps(report, indent=2) + "\n")


def load(arch: str, folder: Path | None = None) -> tuple[torch.nn.Module, torch.nn.Module, dict]:
    """`(model, prompts, report)` of proxy `arch` from `folder` (default: the shipped weights), in eval
    mode, float32."""
    if arch not in PROXIES:
        raise ValueError(f"arch must be one of {sorted(PROXIES)}, got {arch!r}")
    proxy = PROXIES[arch]
    folder = Path(folder) if folder is not None else WEIGHTS / arch
    if not (folder / "denoiser").is_dir():
        raise FileNotFoundError(f"no trained {arch} proxy in {folder} (make one with `toma-fx train-proxy`)")
    model = proxy.model_class().from_pretrained(folder / "denoiser", torch_dtype=torch.float32).eval()
    prompts = proxy.prompts(len(TRAIN))
    prompts.load_state_dict({k: v.float() for k, v in load_file(folder / "prompts.safetensors").items()})
    prompts.requires_grad_(False)
    return model, prompts, json.loads((folder / "report.json").read_text())
