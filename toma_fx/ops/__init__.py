"""The ToMA operators: tiles, destination selection, merge/unmerge and positional tables.

Pure tensor functions that know nothing of models. Shapes: `B` batch, `N` tokens, `C` channels,
`T` tiles, `S` tokens per tile, `K` destinations per tile. Grids the tile does not divide have up to
four blocks of tiles, so per-tile tensors come as lists, one entry per block (see `tiles.py`).
"""

from toma_fx.ops.assignment import DEFAULT_TAU, merge, merge_weights, unmerge
from toma_fx.ops.positions import gather_positions
from toma_fx.ops.sdpa import merge_sdpa, unmerge_sdpa
from toma_fx.ops.select import facility_location, facility_location_reference, select_destinations
from toma_fx.ops.tiles import TileBlock, TileLayout, destinations_per_tile

__all__ = [
    "DEFAULT_TAU",
    "TileBlock",
    "TileLayout",
    "destinations_per_tile",
    "facility_location",
    "facility_location_reference",
    "gather_positions",
    "merge",
    "merge_sdpa",
    "merge_weights",
    "select_destinations",
    "unmerge",
    "unmerge_sdpa",
]
