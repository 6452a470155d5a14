"""`toma-fx train-proxy`: train a proxy denoiser on crops of real photographs, on the CPU, from a seed.

    toma-fx train-proxy --arch flux --steps 1500 --out toma_fx/proxies/weights/flux

Most steps train on 32 x 32 crops and the last `FULL_SIZE_FRACTION` on 64 x 64 ones, the size the
proxies are sampled at (progressive resolution: a step at 32 costs a fifth of one at 64). AdamW with a
linear warm-up and cosine decay, prompts dropped 10% of the time (the null prompt, for held-out photographs
and guidance), and an exponential moving average of the weights, which is what is saved. The run is
fixed by its seed and step count, not by a clock.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from toma_fx import argtypes
from toma_fx.proxies import store
from toma_fx.proxies.data import HELD_OUT, TRAIN, Crops
from toma_fx.proxies.models import PROXIES, SIZE, Proxy

__all__ = ["EVAL_TIMESTEPS", "denoising_loss", "held_out_set", "main", "train"]

FULL_SIZE_FRACTION = 0.2
PHASES = ((SIZE // 2, 2), (SIZE, 1))
"""(crop size, batch multiple): the low- and full-resolution phases."""

EVAL_TIMESTEPS = tuple(range(50, 1000, 100))
"""The noise levels the held-out loss averages over (diffusers' 0..1000 scale)."""


def held_out_set(count: int = 32, seed: int = 1234) -> torch.Tensor:
    """`(count, 3, 64, 64)` fixed crops of the held-out photographs."""
    return Crops(HELD_OUT, SIZE).sample(count, torch.Generator().manual_seed(seed))[0]


@torch.no_grad()
def denoising_loss(proxy: Proxy, model, cond, images: torch.Tensor, seed: int = 0) -> float:
    """Mean squared error of the model's prediction on `images`, averaged over `EVAL_TIMESTEPS`, with
    noise fixed by `seed` (the same for every model scored)."""
    gen = torch.Generator().manual_seed(seed)
    scheduler = proxy.make_scheduler()
    losses = []
    for t in EVAL_TIMESTEPS:
        noise = torch.randn(images.shape, generator=gen)
        ts = torch.full((images.shape[0],), t)
        x_t, target = proxy.noised(images, noise, ts, scheduler)
        losses.append(torch.mean((proxy.predict(model, x_t, ts, cond) - target) ** 2).item())
    return sum(losses) / len(losses)


def train(
    name: str,
    *,
    steps: int,
    batch: int = 8,
    lr: float = 1e-3,
    seed: int = 0,
    ema: float = 0.999,
    log_every: int = 50,
    held_out: int = 32,
) -> tuple[torch.nn.Module, torch.nn.Module, dict]:
    """Train proxy `name` for `steps` optimizer steps (`batch` crops at full size, twice as many at half
    size); returns `(EMA model, EMA prompts, report)`, the report with the loss on `held_out` held-out
    crops before and after."""
    proxy = PROXIES[name]
    torch.manual_seed(seed)
    model, prompts = proxy.build(), proxy.prompts(len(TRAIN))
    averaged = [proxy.build(), proxy.prompts(len(TRAIN))]
    for avg, live in zip(averaged, (model, prompts)):
        avg.load_state_dict(live.state_dict())
        avg.requires_grad_(False)
    params = [*model.parameters(), *prompts.parameters()]
    live_params = [p for m in (model, prompts) for p in m.state_dict(keep_vars=True).values()]
    avg_params = [p for m in averaged for p in m.state_dict(keep_vars=True).values()]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01, betas=(0.9, 0.99))
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: min(1.0, (i + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(i, steps) / steps))
    )
    scheduler = proxy.make_scheduler()
    (low, low_batch), (full, full_batch) = PHASES
    data = {low: Crops(TRAIN, low), full: Crops(TRAIN, full)}
    gen = torch.Generator().manual_seed(seed)
    held_out = held_out_set(held_out)
    null = torch.full((held_out.shape[0],), prompts.null)
    untrained = denoising_loss(proxy, model, prompts(null), held_out)
    history, start = [], time.perf_counter()
    model.train()
    for i in range(steps):
        size, multiple = (low, low_batch) if i < steps * (1 - FULL_SIZE_FRACTION) else (full, full_batch)
        images, labels = data[size].sample(batch * multiple, gen)
        batch_now = images.shape[0]
        labels = torch.where(torch.rand(batch_now, generator=gen) < 0.1, prompts.null, labels)
        t = _timesteps(proxy, batch_now, gen)
        x_t, target = proxy.noised(images, torch.randn(images.shape, generator=gen), t, scheduler)
        loss = torch.mean((proxy.predict(model, x_t, t, prompts(labels)) - target) ** 2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        with torch.no_grad():
            decay = min(ema, (1 + i) / (10 + i))
            torch._foreach_lerp_(avg_params, live_params, 1 - decay)
        if (i + 1) % log_every == 0 or i + 1 == steps:
            history.append(
                {"step": i + 1, "loss": round(loss.item(), 4), "s": round(time.perf_counter() - start)}
            )
            print(
                f"step {i + 1}/{steps}  loss {loss.item():.4f}  {time.perf_counter() - start:.0f} s",
                flush=True,
            )
    model, prompts = averaged
    model.eval()
    store.round_to_stored(model, prompts)
    report = {
        "arch": name,
        "steps": steps,
        "batch": batch,
        "lr": lr,
        "seed": seed,
        "ema": ema,
        "train_photos": list(TRAIN),
        "held_out_photos": list(HELD_OUT),
        "minutes": round((time.perf_counter() - start) / 60, 1),
        "held_out_loss": {
            "untrained": round(untrained, 4),
            "trained": round(denoising_loss(proxy, model, prompts(null), held_out), 4),
        },
        "history": history,
        "torch": torch.__version__,
    }
    return model, prompts, report


def _timesteps(proxy: Proxy, batch: int, gen: torch.Generator) -> torch.Tensor:
    """Training timesteps: logit-normal for rectified flow (SD3's choice), uniform for v-prediction."""
    if proxy.prediction == "flow":
        return torch.sigmoid(torch.randn(batch, generator=gen)) * 1000
    return torch.randint(1000, (batch,), generator=gen)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="toma-fx train-proxy", description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", choices=sorted(PROXIES), required=True)
    p.add_argument("--steps", type=argtypes.count, default=1500, help="optimizer steps")
    p.add_argument("--batch", type=argtypes.count, default=8, help="crops per step at full size")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help="folder for the weights (store.save)")
    args = p.parse_args(argv)
    model, prompts, report = train(args.arch, steps=args.steps, batch=args.batch, lr=args.lr, seed=args.seed)
    store.save(args.out, model, prompts, report)
    print(json.dumps(report["held_out_loss"]), f"{report['minutes']} min; saved to {args.out}")
    return 0
