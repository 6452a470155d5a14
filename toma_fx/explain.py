"""`explain`: what the ToMA passes would do to a model, without compiling it.

    report = toma_fx.explain(model, **inputs, config=ToMAConfig(ratio=0.5))
    print(report)                  # regions, skipped candidates, FLOP-ideal speedup
    print(report.diff)             # unified diff of the graph code before and after
    report.counts()                # {"self": 4, "cross": 2, "mlp": 4, ...}

Like `torch._dynamo.explain`, it resets Dynamo's caches first (other compiled models recompile on their
next call). The model is traced by Dynamo once, each graph is rewritten as the backend would rewrite it,
and the rewrite is traced by AOTAutograd (as Inductor's compile would be): a rewrite that would fall
back at lowering is reported as an error and not counted. FLOPs come from the shapes each node holds
(`passes/flops.py`), so a region's cost before and after merging is the sum over the nodes it runs
merged plus the nodes ToMA inserted for it.
"""

from __future__ import annotations

import difflib
from collections import Counter
from dataclasses import dataclass, field

import torch

from toma_fx.config import ToMAConfig
from toma_fx.passes.discover import Skip
from toma_fx.passes.flops import node_flops
from toma_fx.passes.pipeline import Result, graph_name, run

__all__ = ["Region", "Report", "explain"]


@dataclass(frozen=True)
class Region:
    """One merged site."""

    path: str
    kind: str
    tokens: int
    text: int
    grid: str
    tile: tuple[int, ...]
    destinations: int
    selection: str
    flops_before: int
    flops_after: int


@dataclass
class Report:
    """What the passes did to every graph Dynamo produced for the model."""

    config: ToMAConfig
    regions: list[Region] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    flops_before: int = 0
    flops_after: int = 0
    diff: str = ""
    errors: list[str] = field(default_factory=list)
    graphs: int = 0

    @property
    def speedup(self) -> float:
        """FLOP-ideal speedup of the whole graph: FLOPs before / FLOPs after."""
        return self.flops_before / self.flops_after if self.flops_after else 1.0

    def counts(self) -> dict[str, int]:
        """Merged regions per kind."""
        return dict(Counter(r.kind for r in self.regions))

    def __str__(self) -> str:
        head = ["region", "kind", "tokens", "grid", "tile", "dst", "selection", "GFLOP before", "after"]
        rows = [
            [
                r.path,
                r.kind,
                f"{r.tokens}+{r.text}" if r.text else str(r.tokens),
                r.grid,
                "x".join(map(str, r.tile)),
                str(r.destinations),
                r.selection,
                f"{r.flops_before / 1e9:.3f}",
                f"{r.flops_after / 1e9:.3f}",
            ]
            for r in self.regions
        ]
        lines = [f"ToMA {self.config.to_dict()}", *_table(head, rows)]
        if self.skipped:
            lines += [
                "",
                "skipped:",
                *_table(["region", "kind", "why"], [[s.path, s.kind, s.why] for s in self.skipped]),
            ]
        lines += [f"error: {e}" for e in self.errors]
        lines.append(
            f"\n{len(self.regions)} regions merged in {self.graphs} graph(s); whole graph "
            f"{self.flops_before / 1e9:.3f} -> {self.flops_after / 1e9:.3f} GFLOP, "
            f"FLOP-ideal speedup {self.speedup:.2f}x"
        )
        return "\n".join(lines)


def explain(
    model: torch.nn.Module,
    *args,
    config: ToMAConfig | None = None,
    fullgraph: bool = False,
    call_grid: tuple[int, ...] | None = None,
    **kwargs,
) -> Report:
    """Trace `model(*args, **kwargs)` with Dynamo, run the ToMA passes, and report what they did.

    `fullgraph` is as for `torch.compile`: with True a graph break raises, as it would in the compile
    being explained. `call_grid` is the latent grid a pipeline hook would give block graphs (the
    `(H, W)` or `(F, H, W)` of the latent), for explaining a block on its own."""
    config = ToMAConfig() if config is None else config
    if not isinstance(config, ToMAConfig):
        raise ValueError(f"config must be a ToMAConfig, got {type(config).__name__}")
    report = Report(config)

    def backend(gm, example_inputs):
        result = run(gm, example_inputs, config, call_grid=call_grid)
        if result.rewrites:
            lowered = _lowering_error(result.gm, example_inputs)
            if lowered:  # the compile would fall back to the graph as traced: so does the report
                result = Result(gm, skips=result.skips, error=f"lowering {graph_name(gm)}: {lowered}")
        before, after = result.total_flops
        if not before:  # nothing was counted (ratio 0, or a graph the pass did not analyse)
            before = after = sum(node_flops(gm).values())
        report.graphs += 1
        report.flops_before += before
        report.flops_after += after
        report.skipped += result.skips
        if result.error:
            report.errors.append(result.error)
        for rw in result.rewrites:
            s, c = rw.site, rw.site.candidate
            report.regions.append(
                Region(
                    path=c.path,
                    kind=c.kind,
                    tokens=c.n,
                    text=c.before + c.after,
                    grid=str(c.grid),
                    tile=s.layout[1],
                    destinations=s.merged,
                    selection="select" if s.leader == s.index else f"reuse #{s.leader}",
                    flops_before=result.flops[s.index][0],
                    flops_after=result.flops[s.index][1],
                )
            )
        report.diff += "".join(
            difflib.unified_diff(
                gm.code.splitlines(keepends=True),
                result.gm.code.splitlines(keepends=True),
                f"graph {report.graphs - 1} (traced)",
                f"graph {report.graphs - 1} (ToMA)",
            )
        )
        return result.gm.forward

    torch._dynamo.reset()  # as torch._dynamo.explain does: a fresh trace, not a cached or symbolic one
    with torch.no_grad():
        # dynamic=False: a model compiled before at another shape would otherwise be traced symbolically
        torch.compile(model, backend=backend, dynamic=False, fullgraph=fullgraph)(*args, **kwargs)
    return report


def _lowering_error(gm, example_inputs) -> str | None:
    """Why AOTAutograd cannot trace the rewritten graph (as Inductor's compile would), or None."""
    try:
        torch._dynamo.lookup_backend("aot_eager")(gm, example_inputs)
    except Exception as e:
        return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    return None


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*head), fmt.format(*("-" * w for w in widths)), *(fmt.format(*r) for r in rows)]
