"""The `toma-fx` command line.

    toma-fx demo [--out DIR]        merge quality on real photographs, with a report and a picture
    toma-fx bench ops [...]         time selection, merge and unmerge at SDXL and Flux sizes
    toma-fx bench model [...]       a denoiser under toma_backend vs plain torch.compile, with the FLOP ideal
    toma-fx bench steps [...]       off / select / reuse steps of the schedule vs plain torch.compile

User errors print one line and exit non-zero, without a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from toma_fx import argtypes


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="toma-fx", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="merge quality on real photographs (no downloads)")
    demo.add_argument(
        "--out", type=Path, default=Path("toma-fx-out"), help="folder for report.json and the PNG"
    )
    demo.add_argument("--tile", type=argtypes.tile, default=(4, 4), help="tile in tokens, e.g. 4x4 (default)")
    demo.add_argument(
        "--ratios",
        type=argtypes.ratio,
        nargs="+",
        default=[0.5, 0.75],
        help="fractions of tokens removed, in [0, 1)",
    )

    bench = sub.add_parser("bench", help="benchmarks", add_help=False)
    bench.add_argument(
        "what",
        choices=["ops", "model", "steps"],
        help="ops: selection, merge and unmerge at model sizes; model: ToMA vs plain torch.compile; "
        "steps: off / select / reuse steps",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args, rest = _parser().parse_known_args(argv)
    if args.command == "bench":
        from toma_fx.bench import model, ops, steps

        return {"ops": ops, "model": model, "steps": steps}[args.what].main(rest)
    if rest:
        _parser().error(f"unrecognized arguments: {' '.join(rest)}")
    from toma_fx.demo import format_table, run_demo

    try:
        report = run_demo(args.out, ratios=tuple(args.ratios), tile=args.tile)
    except ValueError as e:  # e.g. a tile larger than a photo's token grid
        print(f"toma-fx demo: error: {e}", file=sys.stderr)
        return 2
    print(format_table(report["rows"]))
    print(f"\nwrote {args.out / 'report.json'} and {args.out / 'reconstructions.png'}")
    return 0
