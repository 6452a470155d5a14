"""Dispatch benchmark: what toma-fx's Python costs each block call, in microseconds.

    toma-fx bench dispatch --arch flux --steps 8

One tiny pipeline (128x128, merged: `min_tokens=16`) with the published model's number of blocks
(`PUBLISHED_DEPTH`), compiled regionally twice with the same stub inner compiler, which runs each graph
once and then returns those outputs: a block call then costs only its Python. Under plain `torch.compile`
that is Dynamo's guards; under `toma_fx.apply` also toma-fx's per-call work (the step and branch, the
schedule decision, the kept destinations, the carried tensors, the per-call grid). Each block call is
timed from the module's forward pre-hook to its forward hook; the difference of the two medians is
toma-fx's cost per block call, what each of Flux-dev's 57 block calls and SDXL's 70 transformer-block
calls pays per denoiser call. Work done once per denoiser call (reading the latent grid) is spread over
the blocks, as at full size.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

import toma_fx
from toma_fx import argtypes
from toma_fx.pipelines import build_pipeline, compile_denoiser, denoiser_of, prompt_inputs

__all__ = ["PUBLISHED_DEPTH", "main", "replay", "run"]

PUBLISHED_DEPTH = {
    "flux": {"num_layers": 19, "num_single_layers": 38},
    "sd3": {"num_layers": 24},
    "pixart": {"num_layers": 28},
    "sdxl": {"transformer_layers_per_block": [1, 2, 10]},
}
"""Config fields that give a tiny denoiser its published model's number of blocks per level."""


def replay(gm: torch.fx.GraphModule, example_inputs: list):
    """An inner compiler whose compiled function returns the outputs of one eager run of `gm`. They
    are never overwritten, so toma-fx need not copy what it keeps, as with Inductor without CUDA
    graphs (`fresh_outputs`)."""
    outputs = gm(*example_inputs)
    return lambda *args: outputs


replay.fresh_outputs = True


def _block_call_us(pipe, call: dict, steps: int) -> list[float]:
    """Microseconds of every repeated-block call in one generation of `pipe`."""
    denoiser = denoiser_of(pipe)
    names = set(denoiser._repeated_blocks)
    blocks = [m for m in denoiser.modules() if type(m).__name__ in names]
    started, spans = {}, []

    def pre(module, args, kwargs=None):
        started[id(module)] = time.perf_counter()

    def post(module, args, output):
        spans.append((time.perf_counter() - started.pop(id(module))) * 1e6)

    handles = [h for b in blocks for h in (b.register_forward_pre_hook(pre), b.register_forward_hook(post))]
    try:
        with torch.no_grad():
            pipe(**call, num_inference_steps=steps)
    finally:
        for h in handles:
            h.remove()
    return spans


def run(arch: str = "flux", *, steps: int = 8, repeats: int = 5, config: toma_fx.ToMAConfig | None = None):
    """Median microseconds per block call, plain compile and ToMA, both on `replay`, and their difference."""
    config = config or toma_fx.ToMAConfig(min_tokens=16)
    pipes = {}
    for method in ("plain", "toma"):
        pipe = build_pipeline(arch, "tiny")
        tiny = denoiser_of(pipe)
        torch.manual_seed(0)
        deep = type(tiny).from_config({**tiny.config, **PUBLISHED_DEPTH[arch]}).eval()
        pipe.register_modules(**{"unet" if arch == "sdxl" else "transformer": deep})
        if method == "plain":
            compile_denoiser(denoiser_of(pipe), regional=True, backend=replay)
        else:
            toma_fx.apply(pipe, config, inner=replay)
        pipes[method] = pipe
    call = dict(prompt_inputs(arch, pipes["plain"]), height=128, width=128, output_type="latent")
    for pipe in pipes.values():  # compiles
        _block_call_us(pipe, call, steps)
    spans = {method: [] for method in pipes}
    for _ in range(repeats):  # alternating, so drift hits both alike
        for method, pipe in pipes.items():
            spans[method] += _block_call_us(pipe, call, steps)
    us = {method: statistics.median(s) for method, s in spans.items()}
    calls = len(spans["toma"]) // (2 if "negative_prompt_embeds" in call else 1)  # CFG: two calls a step
    return {
        "arch": arch,
        "steps": steps,
        "select_noise": config.select_noise,
        "select_avoid": config.select_avoid,
        "block_calls": len(spans["toma"]),
        "blocks_per_denoiser_call": calls // (repeats * steps),
        "plain_us": round(us["plain"], 1),
        "toma_us": round(us["toma"], 1),
        "toma_extra_us": round(us["toma"] - us["plain"], 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="toma-fx bench dispatch", description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", choices=sorted(PUBLISHED_DEPTH), default="flux")
    p.add_argument("--steps", type=argtypes.count, default=8)
    p.add_argument("--repeats", type=argtypes.count, default=5)
    argtypes.method_flags(p)
    p.add_argument("--json", metavar="PATH", help="write the result to this JSON file")
    args = p.parse_args(argv)
    config = toma_fx.ToMAConfig(min_tokens=16, **argtypes.method_config(args))
    r = run(args.arch, steps=args.steps, repeats=args.repeats, config=config)
    print(
        f"{r['arch']}: {r['block_calls']} block calls; median per block call: "
        f"plain compile {r['plain_us']} us, ToMA {r['toma_us']} us, toma-fx's own {r['toma_extra_us']} us"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(r, f, indent=2)
    return 0
