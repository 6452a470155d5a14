"""Plan the merge sites: a tile layout for each candidate, and which sites select and which reuse.

`plan` gives each candidate its layout: its grid (`discover`), the configured tile fitted to it, the
ratio. `group`, run on the sites that survive analysis, decides sharing: a group is a run of
consecutive sites with the same layout (same token set: a UNet level, or all blocks of a DiT). Its first
site selects destinations; the rest reuse them when `share_destinations` is set, and also the first
site's merge weights when `share_weights` is set. Candidates the config leaves out, and those too small
to gain, are skipped with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch.fx.experimental.symbolic_shapes import has_free_symbols

from toma_fx.config import ToMAConfig
from toma_fx.ops.nodes import Layout, tile_layout
from toma_fx.passes.discover import Candidate, Skip
from toma_fx.passes.rules import example

__all__ = ["Site", "fit_tile", "group", "plan"]


@dataclass
class Site:
    """A candidate with its layout. `leader` is the index of the site whose destinations it uses
    (itself when it selects); `weights_from` likewise for merge weights."""

    index: int
    candidate: Candidate
    layout: Layout
    leader: int
    weights_from: int
    tau: float
    noise: float = 0.0  # sigma of the step noise on its selection (`ToMAConfig.select_noise`)
    avoid: float = 1.0  # factor on the gains of its last destinations (`ToMAConfig.select_avoid`)
    form: str = "assignment"  # how it merges and unmerges (`ToMAConfig.merge_form`)

    @property
    def rows(self) -> tuple[int, int, int, int]:
        """Where its image rows sit in its source: `nodes.Rows`."""
        c = self.candidate
        return (c.axis, c.before, c.after, c.batch)

    @property
    def merged(self) -> int:
        return tile_layout(self.layout).num_merged


def fit_tile(tile: tuple[int, ...], grid: tuple[int, ...]) -> tuple[int, ...]:
    """The configured tile for a grid: `(th, tw)` of a `(tt, th, tw)` tile for an image, `(1, th, tw)`
    of an `(th, tw)` tile for a video (per-frame tiles); each side at most the grid's."""
    if len(tile) > len(grid):
        tile = tile[len(tile) - len(grid) :]
    tile = (1,) * (len(grid) - len(tile)) + tuple(tile)
    return tuple(min(t, g) for t, g in zip(tile, grid))


def plan(candidates: list[Candidate], config: ToMAConfig) -> tuple[list[Site], list[Skip]]:
    sites: list[Site] = []
    skips: list[Skip] = []
    for c in candidates:
        why = _why_not(c, config)
        if why:
            skips.append(Skip(c.path, c.kind, why))
            continue
        layout = (c.grid.shape, fit_tile(config.tile, c.grid.shape), config.ratio)
        if tile_layout(layout).num_merged == c.n:
            skips.append(Skip(c.path, c.kind, f"tile {layout[1]} keeps every token at ratio {config.ratio}"))
            continue
        i = len(sites)
        knobs = {"tau": config.tau, "noise": config.select_noise, "avoid": config.select_avoid,
                 "form": config.merge_form}  # fmt: skip
        sites.append(Site(i, c, layout, leader=i, weights_from=i, **knobs))
    return sites, skips


def group(sites: list[Site], config: ToMAConfig) -> None:
    """Point each site at the site whose destinations (and weights) it uses, in place."""
    for prev, site in zip([None, *sites], sites):
        shared = config.share_destinations and prev is not None and prev.layout == site.layout
        site.leader = prev.leader if shared else site.index
        site.weights_from = prev.weights_from if shared and config.share_weights else site.index


def _why_not(c: Candidate, config: ToMAConfig) -> str | None:
    if c.kind not in config.kinds:
        return f"kind {c.kind!r} not in config.kinds"
    ex = example(c.source)
    if ex is None or has_free_symbols(ex.shape):
        return "symbolic token count: compile with dynamic=False to merge at every resolution"
    if c.n < config.min_tokens:
        return f"{c.n} image tokens < min_tokens={config.min_tokens}"
    return None
