"""Where the rows of every tensor come from: the analysis that tells image rows (traced to a latent
grid) from everything else, whatever the inputs are called.

    types.py      Factor, Segment, Axis, Dims
    analysis.py   `row_origins(gm)`: one pass in graph order over the `ROWS` rules
    layout.py     reshapes and axis moves (factor algebra)
    indexing.py   slices, splits, joins, padding, slice writes
    compute.py    elementwise ops, contractions, convolutions, norms, reductions, new buffers
"""

from toma_fx.passes.rows import compute, indexing, layout  # noqa: F401  (each module registers its rules)
from toma_fx.passes.rows.analysis import ROWS, Many, RowOrigins, is_state, row_origins
from toma_fx.passes.rows.types import Axis, Dims, Factor, Segment

__all__ = ["ROWS", "Axis", "Dims", "Factor", "Many", "RowOrigins", "Segment", "is_state", "row_origins"]
