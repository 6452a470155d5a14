"""torchao-quantized denoisers under `toma_fx.apply` (CPU: int8 weight-only and dynamic int8).

A quantized linear is still a linear to Dynamo (`F.linear` on a weight tensor subclass), and dynamic
activation quantization scales each token on its own, so taking a subset of tokens commutes with it:
the regions are those of the unquantized model, and the merged output stays close to it.
"""

import pytest
import torch

from tests.compiler.helpers import Recorder, merges_per_graph
from toma_fx import ToMAConfig
from toma_fx.pipelines import apply, build_pipeline, prompt_inputs
from toma_fx.quantize import quantize

torchao = pytest.importorskip("torchao")
from torchao.quantization import (  # noqa: E402
    Int8DynamicActivationInt8WeightConfig,
    Int8WeightOnlyConfig,
    quantize_,
)

SMALL = ToMAConfig(ratio=0.5, min_tokens=16, tile=(4, 4))


def generate(pipe, inputs) -> torch.Tensor:
    with torch.no_grad():
        out = pipe(
            **inputs, height=128, width=128, num_inference_steps=2, output_type="pt",
            generator=torch.Generator().manual_seed(0),
        )  # fmt: skip
    return out.images


@pytest.fixture(scope="module")
def unquantized():
    """Merges per block graph and the merged images of the unquantized tiny Flux."""
    pipe = build_pipeline("flux")
    inputs = prompt_inputs("flux", pipe, true_cfg=False)
    rec = Recorder()
    apply(pipe, SMALL, inner=rec)
    images = generate(pipe, inputs)
    return merges_per_graph(rec), images


@pytest.mark.parametrize("quantization", [Int8WeightOnlyConfig, Int8DynamicActivationInt8WeightConfig])
def test_quantized_linears_are_merged(unquantized, quantization):
    expected_merges, expected = unquantized
    pipe = build_pipeline("flux")
    inputs = prompt_inputs("flux", pipe, true_cfg=False)
    quantize_(pipe.transformer, quantization(set_inductor_config=False))  # leave the config as it is
    rec = Recorder()
    apply(pipe, SMALL, inner=rec)
    got = generate(pipe, inputs)
    assert merges_per_graph(rec) == expected_merges
    assert got.shape == expected.shape and torch.isfinite(got).all()
    assert (got - expected).abs().max() < 0.1  # int8 rounding, not a different merge


def test_quantize_by_name_names_the_choices():
    with pytest.raises(ValueError, match=r"quantization must be one of \['fp8-dynamic', 'int8-dynamic'"):
        quantize(build_pipeline("flux"), "int4")
