"""`ToMAConfig`: every knob of the compiler pass, validated when it is built.

A bad value raises `ValueError` naming the field and the accepted range here, at configuration time,
never deep inside a compile. The config is data: it round-trips through `to_dict` / `from_dict` (JSON),
so a benchmark log says exactly what ran.
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass, field

from toma_fx.ops.assignment import DEFAULT_TAU

__all__ = ["MERGE_FORMS", "REGION_KINDS", "ToMAConfig"]

REGION_KINDS = frozenset({"self", "cross", "joint", "single", "mlp"})
"""self: q, k, v from one token set. cross: queries from image tokens, keys/values from text (only the
query side is merged). joint: text and image tokens concatenated (Flux double blocks, SD3; text is never
merged). single: attention and a parallel MLP on one input (Flux single blocks). mlp: linear ->
activation -> linear feed-forward."""

MERGE_FORMS = ("assignment", "sdpa")
"""assignment: merge and unmerge are matmuls with one soft assignment `A` per site (`ops/assignment.py`).
sdpa: both are scaled-dot-product attention over the tile, no `A` kept (`ops/sdpa.py`)."""


@dataclass(frozen=True)
class ToMAConfig:
    """How `toma_backend` merges tokens.

    Args:
        ratio: fraction of image tokens removed, in [0, 1). 0.5 is the paper's setting for SDXL and
            Flux: attention then runs on half the tokens (about 4x fewer attention FLOPs). 0 leaves the
            graph untouched, exactly as plain `torch.compile` would compile it.
        tile: `(tt, th, tw)` or `(th, tw)` tile of the token grid, in tokens, each >= 1. Destinations
            are chosen and tokens merged inside each tile. Video grids `(frames, rows, columns)` use all
            three sides; image grids the last two; a 2-value tile tiles each frame of a video on its own
            (`(1, th, tw)`). The default, 2x4x4, is the authors' 4x4 Flux setting for images (256 tiles at
            64x64 tokens) and two frames of it for videos: on panned photographs it reconstructs 0.6-1.7
            dB better than per-frame 4x4 tiles at the same speed (`docs/benchmarks.md`). Larger tiles
            select better clusters but cost O(S^2) per tile. A side larger than the grid's is clamped.
        kinds: region kinds to merge, a subset of `REGION_KINDS` (default: all).
        min_tokens: merge only token sets of at least this many image tokens, >= 1. Selects the levels
            of a UNet: SDXL at 1024x1024 has 4096 (64x64) and 1024 (32x32); 2048 merges only the former.
            Below ~1000 tokens the merge overhead approaches the attention saved (`docs/benchmarks.md`).
        grid: `(H, W)` or `(F, H, W)` token grid of the largest token set, or None to trace it from the
            graph (a `(B, C, H, W)` or `(B, C, F, H, W)` latent made into tokens, position ids) or take
            it from the call (`toma_fx.apply` records each call's latent). Smaller levels are derived by
            halving (rounding up, as stride-2 convs do). A `(B, L, C)` token input is merged only when
            some grid holds its L tokens: rows the pass cannot place on a grid are never merged.
        tau: softmax temperature of the merge weights on cosine similarity, > 0. 1000 (the reference
            code's value) is nearly a hard assignment.
        merge_form: how merged tokens are made and spread back, one of `MERGE_FORMS`. "assignment" (the
            default): a soft assignment `A` of each token to its tile's destinations, merge by the
            cluster means `A / rowsum(A)`, unmerge by `A^T`. "sdpa": the paper's attention form, each
            destination attending over its tile's tokens and each token over its tile's destinations,
            by `scaled_dot_product_attention`; it keeps no `A`, so it has no weights to share or reuse,
            and it keeps the site's input alive until the unmerge. Measured on the trained proxies in
            `docs/fidelity.md`.
        share_destinations: consecutive regions with the same token set reuse the destinations
            selected at the first one (the paper's cross-layer redundancy). False selects at every region.
        share_weights: regions that share destinations also reuse the first region's merge weights. Off
            by default: each region weighs its own normed input, which drifts from block to block, and the
            weights cost only `K/N` of an attention score matmul.
        select_noise: `sigma >= 0` of the step noise on destination selection: each greedy gain is
            multiplied by `exp(sigma * z)`, `z ~ N(0, 1)` drawn per tile, token and pick (the same for
            every sample of a batch) from a hash of the step index, so the partition of each tile changes
            between steps (facility location alone picks nearly the same destinations at every step) and
            a rerun picks the same ones. 0 selects by coverage alone. The default 1 gives +3.0 dB sample
            PSNR on the trained Flux proxy and +1.7 dB on the SDXL proxy at ratio 0.5 with
            `select_avoid=0.5` (`docs/fidelity.md`), at no measurable cost in time.
        select_avoid: factor in [0, 1] on the greedy gains of the tokens that were a site's destinations
            at its previous selection in the generation, so fresh destinations move away from the last
            ones; 1 is off, 0 excludes them while other tokens still gain. Default 0.5.

        With either on (the default), a call's destinations depend on its step: a model compiled with
        the bare backend and called without a known step counts its calls as steps, so call it within
        `toma_fx.step(i)`, track its pipeline (`toma_fx.apply` does), or `toma_fx.reset_steps()`
        between generations for reruns to repeat. `select_noise=0, select_avoid=1` makes every call a
        function of its inputs alone.

    The sampling schedule (`toma_fx.schedule`; steps count denoiser evaluations of one generation, from 0):

        warmup_steps: the first steps run unmerged, >= 0.
        merge_every: after warm-up, merge on every n-th step and run the others unmerged, >= 1. The
            reference Flux script uses 3.
        select_every: on merged steps, select destinations at least every n steps and reuse the kept
            ones in between, >= 1. 1 selects on every merged step.
        reuse_weights: on steps that reuse destinations, also reuse the merge weights kept with them
            instead of recomputing them from the current features.

    Each default and the measurement behind it is in `docs/schedule.md`. Any schedule other than the
    default needs to know the step, as the default selection does: `toma_fx.step`,
    `toma_fx.track_steps(pipe)`, or counted calls.
    """

    ratio: float = 0.5
    tile: tuple[int, ...] = (2, 4, 4)
    kinds: frozenset[str] = field(default=REGION_KINDS)
    min_tokens: int = 1024
    grid: tuple[int, ...] | None = None
    tau: float = DEFAULT_TAU
    merge_form: str = "assignment"
    share_destinations: bool = True
    share_weights: bool = False
    select_noise: float = 1.0
    select_avoid: float = 0.5
    warmup_steps: int = 0
    merge_every: int = 1
    select_every: int = 1
    reuse_weights: bool = False

    def __post_init__(self) -> None:
        if not (
            isinstance(self.ratio, numbers.Real) and not isinstance(self.ratio, bool) and 0 <= self.ratio < 1
        ):
            raise ValueError(f"ratio must be a number in [0, 1), got {self.ratio!r}")
        object.__setattr__(self, "ratio", float(self.ratio))
        object.__setattr__(self, "tile", _sizes("tile", self.tile))
        if self.grid is not None:
            object.__setattr__(self, "grid", _sizes("grid", self.grid))
        kinds = {self.kinds} if isinstance(self.kinds, str) else self.kinds
        try:
            kinds = frozenset(kinds)
        except TypeError:
            kinds = None
        if kinds is None or not kinds <= REGION_KINDS:
            raise ValueError(f"kinds must be a subset of {sorted(REGION_KINDS)}, got {self.kinds!r}")
        object.__setattr__(self, "kinds", kinds)
        if not (_is_int(self.min_tokens) and self.min_tokens >= 1):
            raise ValueError(f"min_tokens must be an int >= 1, got {self.min_tokens!r}")
        if not (isinstance(self.tau, numbers.Real) and 0 < self.tau < float("inf")):
            raise ValueError(f"tau must be a finite number > 0, got {self.tau!r}")
        if self.merge_form not in MERGE_FORMS:
            raise ValueError(f"merge_form must be one of {list(MERGE_FORMS)}, got {self.merge_form!r}")
        noise = self.select_noise
        if not (
            isinstance(noise, numbers.Real) and not isinstance(noise, bool) and 0 <= noise < float("inf")
        ):
            raise ValueError(f"select_noise must be a finite number >= 0, got {noise!r}")
        object.__setattr__(self, "select_noise", float(noise))
        avoid = self.select_avoid
        if not (isinstance(avoid, numbers.Real) and not isinstance(avoid, bool) and 0 <= avoid <= 1):
            raise ValueError(f"select_avoid must be a number in [0, 1], got {avoid!r}")
        object.__setattr__(self, "select_avoid", float(avoid))
        for name, low in (("warmup_steps", 0), ("merge_every", 1), ("select_every", 1)):
            value = getattr(self, name)
            if not (_is_int(value) and value >= low):
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        for name in ("share_destinations", "share_weights", "reuse_weights"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        kept = [name for name in ("share_weights", "reuse_weights") if getattr(self, name)]
        if self.merge_form == "sdpa" and kept:
            raise ValueError(
                f"{kept[0]}=True needs merge_form='assignment': the SDPA form computes no merge weights"
            )

    def replace(self, **changes) -> ToMAConfig:
        """A copy with some fields changed (validated again)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"unknown ToMAConfig fields {sorted(unknown)}; fields: {_FIELDS}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """JSON-ready: tuples as lists, kinds sorted."""
        d = dataclasses.asdict(self)
        d["kinds"] = sorted(self.kinds)
        d["tile"] = list(self.tile)
        d["grid"] = None if self.grid is None else list(self.grid)
        return d

    @property
    def scheduled(self) -> bool:
        """Whether calls differ by step: True unless every step merges and selects afresh, without step
        noise and without avoiding the last destinations."""
        schedule = (self.warmup_steps, self.merge_every, self.select_every)
        return (*schedule, self.select_noise, self.select_avoid) != (0, 1, 1, 0.0, 1.0)

    @classmethod
    def from_dict(cls, d: dict) -> ToMAConfig:
        return cls().replace(**d)


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _sizes(name: str, value) -> tuple[int, ...]:
    """2 or 3 ints >= 1: `(rows, columns)` or `(frames, rows, columns)`."""
    try:
        sizes = tuple(value)
    except TypeError:
        sizes = ()
    if len(sizes) not in (2, 3) or not all(_is_int(v) and v >= 1 for v in sizes):
        raise ValueError(f"{name} must be 2 or 3 ints >= 1 ((h, w) or (t, h, w)), got {value!r}")
    return tuple(int(v) for v in sizes)


_FIELDS = [f.name for f in dataclasses.fields(ToMAConfig)]
