"""What a denoising step does: run unmerged, select fresh destinations, or reuse the kept ones.

A pure function of the config and the step index, so every block of a step, every CFG branch and every
generation agree without shared counters. With `warmup_steps=2, merge_every=2, select_every=4`:

    step      0    1    2       3    4      5    6       7    8       9    10
    decision  off  off  select  off  reuse  off  select  off  reuse   off  select

Destinations are selected on the first merged step and then on the first merged step at or after every
`select_every` steps (counted from the end of warm-up), so they are never older than `select_every` steps.
"""

from __future__ import annotations

from enum import Enum

from toma_fx.config import ToMAConfig

__all__ = ["Decision", "decide"]


class Decision(Enum):
    OFF = "off"
    SELECT = "select"
    REUSE = "reuse"


def decide(config: ToMAConfig, step: int) -> Decision:
    """The decision for step `step` (>= 0) of a generation."""
    k = step - config.warmup_steps
    if k < 0 or k % config.merge_every:
        return Decision.OFF
    # a multiple of select_every in (k - merge_every, k]: the previous merged step was in an older window
    if k // config.select_every != (k - config.merge_every) // config.select_every:
        return Decision.SELECT
    return Decision.REUSE
