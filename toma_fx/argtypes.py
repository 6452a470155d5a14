"""argparse types shared by the command line and the benchmarks: a bad value is a one-line usage error
naming the flag and the accepted range."""

from __future__ import annotations

import argparse

from toma_fx.config import MERGE_FORMS, ToMAConfig

TILE_HELP = "tile in tokens: FxHxW (default 2x4x4; images use its HxW), or HxW: each frame on its own"


def tile(text: str) -> tuple[int, int]:
    """'4x4' -> (4, 4): a tile, or any height x width (argparse prefixes the flag's name)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must look like 4x4 (height x width, positive ints), got {text!r}"
        ) from None
    if h < 1 or w < 1:
        raise argparse.ArgumentTypeError(f"sides must be >= 1, got {text!r}")
    return h, w


def sizes(text: str) -> tuple[int, ...]:
    """'64x64' or '8x32x32' -> (64, 64) / (8, 32, 32): a 2-D or 3-D grid or tile."""
    try:
        values = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        values = ()
    if len(values) not in (2, 3) or min(values) < 1:
        raise argparse.ArgumentTypeError(f"must look like 4x4 or 2x4x4 (positive ints), got {text!r}")
    return values


def tiles(text: str) -> list[tuple[int, int]]:
    """'4x4,8x8' -> [(4, 4), (8, 8)]."""
    return [tile(part.strip()) for part in text.split(",")]


def _number(text: str) -> float:
    """`text` as a float, nan when it is none (every range check below refuses nan)."""
    try:
        return float(text)
    except ValueError:
        return float("nan")


def ratio(text: str) -> float:
    """A merge ratio in [0, 1)."""
    value = _number(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"ratio must be in [0, 1), got {text!r}")
    return value


def positive(text: str) -> float:
    """A finite number > 0."""
    value = _number(text)
    if not 0.0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}")
    return value


def at_least_zero(text: str) -> float:
    """A finite number >= 0."""
    value = _number(text)
    if not 0.0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def unit_interval(text: str) -> float:
    """A number in [0, 1]."""
    value = _number(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], got {text!r}")
    return value


def count(text: str) -> int:
    """An int >= 1."""
    return _int_at_least(text, 1)


def nonnegative(text: str) -> int:
    """An int >= 0."""
    return _int_at_least(text, 0)


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if value < low:
        raise argparse.ArgumentTypeError(f"must be an int >= {low}, got {text!r}")
    return value


def compiler_flag(p: argparse.ArgumentParser) -> None:
    """`--compiler`: what compiles the graphs, plain and ToMA alike."""
    p.add_argument(
        "--compiler",
        choices=["inductor", "aot_eager"],
        default="inductor",
        help="inductor (default: fused kernels, what is timed), or aot_eager: the same graphs without code "
        "generation, to check numerics quickly or where no C++ compiler is installed",
    )


def method_flags(p: argparse.ArgumentParser) -> None:
    """`--select-noise`, `--select-avoid` and `--merge-form`, defaulting to `ToMAConfig`'s; read them
    back with `method_config`."""
    noise, avoid, form = ToMAConfig.select_noise, ToMAConfig.select_avoid, ToMAConfig.merge_form
    p.add_argument(
        "--select-noise", type=at_least_zero, default=noise,
        help=f"sigma of the step noise on destination selection, >= 0 (default {noise:g}; 0: none)",
    )  # fmt: skip
    p.add_argument(
        "--select-avoid", type=unit_interval, default=avoid,
        help=f"factor on the selection gains of the last destinations, in [0, 1] (default {avoid:g}; 1: off)",
    )  # fmt: skip
    p.add_argument(
        "--merge-form", choices=MERGE_FORMS, default=form,
        help=f"merge and unmerge by a soft assignment or by attention over each tile (default {form})",
    )  # fmt: skip


def method_config(args: argparse.Namespace) -> dict:
    """The `ToMAConfig` fields `method_flags` set."""
    return {name: getattr(args, name) for name in ("select_noise", "select_avoid", "merge_form")}
