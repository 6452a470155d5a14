"""torchao weight quantization by name, to stack with ToMA.

    quantize(pipe, "int8-weight")    torchao.quantize_(denoiser, Int8WeightOnlyConfig(...)), in place

A quantized linear is still `F.linear` to Dynamo, on a weight tensor subclass, so ToMA finds the same
regions (`docs/stacking.md`). torchao's configs would otherwise set Inductor options process-wide
(`set_inductor_config`); here they leave them alone.
"""

from __future__ import annotations

from toma_fx.pipelines import denoiser_of

__all__ = ["QUANTIZATIONS", "quantize"]

QUANTIZATIONS = {
    "int8-weight": "Int8WeightOnlyConfig",
    "int8-dynamic": "Int8DynamicActivationInt8WeightConfig",
    "fp8-dynamic": "Float8DynamicActivationFloat8WeightConfig",  # needs a GPU with fp8 (sm_89+)
}
"""Name -> torchao config class."""


def quantize(pipe, name: str) -> None:
    """Quantize `pipe`'s denoiser in place with torchao config `name` (`QUANTIZATIONS`)."""
    if name not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {sorted(QUANTIZATIONS)}, got {name!r}")
    try:
        import torchao.quantization as tq
    except ImportError:
        raise ValueError("quantization needs torchao: pip install 'toma-fx[adapters]'") from None
    config = getattr(tq, QUANTIZATIONS[name])(set_inductor_config=False)
    tq.quantize_(denoiser_of(pipe), config)
