"""toma-fx: ToMA (Token Merge with Attention) for diffusion denoisers, as a torch.compile backend.

Importing this package imports torch, and neither Triton nor CUDA.
"""

from toma_fx.ops import TileLayout

__all__ = ["TileLayout"]
__version__ = "0.1.0"
