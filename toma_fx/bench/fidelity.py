"""`toma-fx bench fidelity`: ToMA against its peers on denoisers trained on real photographs.

    toma-fx bench fidelity --out toma-fx-out/fidelity               # both proxies, ratios 0.25 0.5 0.75
    toma-fx bench fidelity --proxies flux --ratios 0.5 --seeds 1    # quicker

Every method keeps the same number of image tokens at the merged level (32 x 32 tokens, both proxies):

    toma      ToMA as configured: facility-location destinations, soft merge, its schedule
    random    the same merge with K random destinations per tile
    strided   the same merge with tomesd's destinations: one per 2x1 (0.5) or 2x2 (0.75) cell
    todo      ToDo: every query kept, keys and values downsampled 2x1 (0.5) or 2x2 (0.75)

and, with `--methods`, a diagnostic: `random-fixed`, random destinations drawn once and kept at every
call, which tells apart what random choices gain by changing from step to step.

Strided and ToDo have no setting at ratio 0.25 (their cells keep 1/2 or 1/4); those rows say so. Each is
scored against the unmerged model (`toma_fx.proxies`, the shipped trained weights):

    loss+     increase of the held-out denoising loss (photographs never trained on, null prompt,
              averaged over noise levels): the task's own measure
    psnr/ssim final samples against the unmerged samples of the same seeds and prompts
    swd       sliced Wasserstein distance of 7x7 patches between samples and real crops; the unmerged
              model's own distance is the floor
    flop      FLOP-ideal speedup of one denoiser call (FLOPs counted unmerged / merged)

Writes `report.json`, `report.md` and one picture grid per proxy (`samples_<proxy>.png`: unmerged and
each method at ratio 0.5, or the first ratio when 0.5 is not run, one row per sample) into `--out`.
"""

from __future__ import annotations

import argparse
import json
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import toma_fx
from toma_fx import argtypes
from toma_fx.bench.choosers import chooser, swap_selection
from toma_fx.bench.metrics import patch_swd, psnr, ssim
from toma_fx.bench.report import write_sheet
from toma_fx.bench.todo import KVDownsampling
from toma_fx.config import ToMAConfig
from toma_fx.explain import explain
from toma_fx.ops.baselines import CELLS
from toma_fx.proxies import PROXIES, load
from toma_fx.proxies.data import TRAIN, Crops
from toma_fx.proxies.models import PROMPT_TOKENS, SIZE
from toma_fx.proxies.train import denoising_loss, held_out_set

__all__ = ["DEFAULT_METHODS", "METHODS", "format_table", "main", "run"]

GRID = (SIZE // 2, SIZE // 2)
"""The token grid both proxies merge: 2x2 pixels per Flux token; the UNet's first attention level."""

TEXT_BEFORE = {"flux": PROMPT_TOKENS, "sdxl": 0}
"""Text rows ahead of the image rows in each proxy's self-attention (for ToDo, which needs telling)."""


@dataclass(frozen=True)
class Method:
    """A way to run a proxy at a merge ratio: `make(model, proxy name, ratio, config)` returns the
    callable to use in the model's place, or a string saying why the method has no setting there.
    `merges` says whether it runs ToMA's merge (its FLOPs are those `explain` counts in the rewritten
    graph); otherwise the callable runs eagerly and its FLOPs are counted on a call."""

    name: str
    make: Callable[[torch.nn.Module, str, float, ToMAConfig], Callable | str]
    merges: bool = True


def _toma(model, proxy: str, ratio: float, config: ToMAConfig):
    backend = toma_fx.toma_backend.configure(config, ratio=ratio, inner="eager")
    return torch.compile(model, backend=backend, fullgraph=True, dynamic=False)


def _chosen(name: str, fresh: bool = True) -> Callable:
    def make(model, proxy: str, ratio: float, config: ToMAConfig):
        if name == "strided" and ratio not in CELLS:
            return "tomesd's cells keep 1/2 or 1/4 of the tokens"
        inner = swap_selection(chooser(name, seed=0, fresh=fresh))
        backend = toma_fx.toma_backend.configure(config, ratio=ratio, inner=inner)
        return torch.compile(model, backend=backend, fullgraph=True, dynamic=False)

    return make


class _Downsampled(torch.nn.Module):
    def __init__(self, model: torch.nn.Module, mode_args: tuple):
        super().__init__()
        self.model, self.mode_args = model, mode_args

    def forward(self, *args, **kwargs):
        with KVDownsampling(*self.mode_args):
            return self.model(*args, **kwargs)


def _todo(model, proxy: str, ratio: float, config: ToMAConfig):
    if ratio not in CELLS:
        return "ToDo's 2x1 and 2x2 downsampling keep 1/2 or 1/4 of the keys"
    return _Downsampled(model, (GRID, CELLS[ratio], TEXT_BEFORE[proxy]))


METHODS = (
    Method("toma", _toma),
    Method("random", _chosen("random")),
    Method("strided", _chosen("strided")),
    Method("todo", _todo, merges=False),
    Method("random-fixed", _chosen("random", fresh=False)),
)
DEFAULT_METHODS = ("toma", "random", "strided", "todo")


def run(
    out_dir: Path,
    *,
    proxies: tuple[str, ...] = ("flux", "sdxl"),
    ratios: tuple[float, ...] = (0.25, 0.5, 0.75),
    methods: tuple[str, ...] = DEFAULT_METHODS,
    config: ToMAConfig | None = None,
    seeds: int = 2,
    prompts: tuple[int, ...] = tuple(range(len(TRAIN))),
    steps: int = 20,
    held_out: int = 32,
    weights: Path | None = None,
) -> dict:
    """Score every method at every ratio on each proxy; write the report and pictures into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    config = config or ToMAConfig()
    chosen = [m for m in METHODS if m.name in methods]
    results = {}
    for name in proxies:
        results[name] = _score_proxy(name, chosen, ratios, config, seeds, prompts, steps, held_out, weights)
        _picture(results[name].pop("_images"), out_dir / f"samples_{name}.png")
    report = {
        "environment": {"torch": torch.__version__, "cpu": platform.processor() or platform.machine()},
        "config": config.to_dict(),
        "settings": {"seeds": seeds, "prompts": list(prompts), "steps": steps, "held_out": held_out},
        "proxies": results,
    }
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "report.md").write_text(format_table(report) + "\n")
    return report


def _score_proxy(name, methods, ratios, config, seeds, prompt_ids, steps, held_out, weights) -> dict:
    proxy = PROXIES[name]
    model, prompts, trained = load(name, None if weights is None else Path(weights) / name)
    labels = torch.tensor([p for p in prompt_ids for _ in range(seeds)])
    cond = prompts(labels)
    images = held_out_set(held_out)
    null = prompts(torch.full((held_out,), prompts.null))
    real = Crops(TRAIN, SIZE).sample(4 * len(labels), torch.Generator().manual_seed(999))[0]

    def sample(fn) -> torch.Tensor:
        with torch.no_grad():
            x = proxy.sample(fn, cond, steps=steps, generator=torch.Generator().manual_seed(0),
                             step_context=toma_fx.step)  # fmt: skip
        return (x + 1) / 2

    one_call = proxy.call(torch.zeros(1, 3, SIZE, SIZE), torch.full((1,), 500), prompts(labels[:1]))

    merged_speedup: dict[float, float] = {}  # the merge's FLOPs do not depend on how destinations are chosen

    def flop_speedup(method: Method, fn, ratio: float) -> float:
        if not method.merges:
            return _flops(model, one_call) / _flops(fn, one_call)
        if ratio not in merged_speedup:
            report = explain(model, **one_call, config=config.replace(ratio=ratio), fullgraph=True)
            merged_speedup[ratio] = report.speedup
        return merged_speedup[ratio]

    torch._dynamo.reset()
    reference = sample(model)
    base_loss = denoising_loss(proxy, model, null, images)
    floor = patch_swd(reference, (real + 1) / 2)
    rows = [{"method": "unmerged", "ratio": 0.0, "loss": round(base_loss, 5), "swd": round(floor, 5)}]
    pictures = {"unmerged": reference}
    shown = 0.5 if 0.5 in ratios else ratios[0]  # the ratio the picture grid shows
    for ratio in ratios:
        for method in methods:
            torch._dynamo.reset()
            fn = method.make(model, name, ratio, config)
            if isinstance(fn, str):
                rows.append({"method": method.name, "ratio": ratio, "skipped": fn})
                continue
            got = sample(fn)
            loss = denoising_loss(proxy, fn, null, images)
            swd = patch_swd(got, (real + 1) / 2)
            speed = flop_speedup(method, fn, ratio)
            rows.append({
                "method": method.name, "ratio": ratio, "loss": round(loss, 5),
                "loss_increase": round(loss - base_loss, 5), "psnr": round(psnr(got, reference), 2),
                "ssim": round(ssim(got, reference), 4), "swd": round(swd, 5), "flop_speedup": round(speed, 3),
            })  # fmt: skip
            if ratio == shown:
                pictures[method.name] = got
    torch._dynamo.reset()
    return {"trained": {k: trained[k] for k in ("steps", "minutes", "held_out_loss")}, "rows": rows,
            "_images": pictures}  # fmt: skip


def _flops(fn, kwargs: dict) -> int:
    # The math backend runs attention as matmuls, which the counter sees (CPU's fused kernel it does not).
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        fn(**kwargs)
    return counter.get_total_flops()


def _picture(images: dict[str, torch.Tensor], path: Path, rows: int = 6) -> None:
    """One column per method, labelled, one row per sample, at twice the samples' size."""
    n = min(rows, next(iter(images.values())).shape[0])
    write_sheet(path, [[(name, batch[i]) for name, batch in images.items()] for i in range(n)], scale=2)


def format_table(report: dict) -> str:
    """Markdown: one table per proxy, one row per method and ratio."""
    lines = []
    for name, result in report["proxies"].items():
        t = result["trained"]
        lines += [
            f"### {name} proxy (trained {t['steps']} steps, {t['minutes']} min; held-out loss "
            f"{t['held_out_loss']['untrained']} untrained, {t['held_out_loss']['trained']} trained)",
            "",
            "| method | ratio | loss+ | PSNR dB | SSIM | SWD (floor) | FLOP-ideal |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        floor = result["rows"][0]["swd"]
        for r in result["rows"][1:]:
            if "skipped" in r:
                lines.append(f"| {r['method']} | {r['ratio']} | n/a: {r['skipped']} | | | | |")
                continue
            lines.append(
                f"| {r['method']} | {r['ratio']} | {r['loss_increase']:+.5f} | {r['psnr']:.2f} "
                f"| {r['ssim']:.4f} | {r['swd']:.4f} ({floor:.4f}) | {r['flop_speedup']:.2f}x |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="toma-fx bench fidelity", description=__doc__.split("\n\n")[0])
    p.add_argument("--proxies", nargs="+", choices=sorted(PROXIES), default=["flux", "sdxl"])
    p.add_argument("--ratios", nargs="+", type=argtypes.ratio, default=[0.25, 0.5, 0.75])
    p.add_argument("--methods", nargs="+", choices=[m.name for m in METHODS], default=list(DEFAULT_METHODS))
    p.add_argument("--seeds", type=argtypes.count, default=2, help="samples per prompt")
    p.add_argument("--steps", type=argtypes.count, default=20, help="sampling steps")
    p.add_argument("--tile", type=argtypes.sizes, help=argtypes.TILE_HELP)
    argtypes.method_flags(p)
    p.add_argument("--weights", type=Path, help="a folder of trained proxies (<proxy>/), default: shipped")
    p.add_argument("--out", type=Path, default=Path("toma-fx-out/fidelity"))
    args = p.parse_args(argv)
    tile = {} if args.tile is None else {"tile": args.tile}
    config = ToMAConfig(**argtypes.method_config(args), **tile)
    try:
        report = run(args.out, proxies=tuple(args.proxies), ratios=tuple(args.ratios),
                     methods=tuple(args.methods), config=config, seeds=args.seeds, steps=args.steps,
                     weights=args.weights)  # fmt: skip
    except FileNotFoundError as e:  # --weights without a trained proxy in it
        p.exit(2, f"toma-fx bench fidelity: error: {e}\n")
    print(format_table(report))
    print(f"wrote {args.out / 'report.json'}, report.md and samples_<proxy>.png")
    return 0
