"""Reuse-guarded selection: the schedule picks select / reuse / off per call, with no recompiles."""

import pytest
import torch

import toma_fx
from toma_fx.ops import select as select_module
from toma_fx.state import STATE

from .helpers import output, small, tiny


@pytest.fixture
def selections(monkeypatch):
    """Counts runs of the selection op (its CPU body), compiled code included."""
    calls = []
    real = select_module.facility_location_reference

    def counted(metric, k):
        calls.append(k)
        return real(metric, k)

    monkeypatch.setattr(select_module, "facility_location_reference", counted)
    return calls


def compile_model(model, backend, regional: bool):
    if regional:  # dynamic=False: each token-grid size of a UNet gets its own static (mergeable) graph
        model.compile_repeated_blocks(backend=backend, fullgraph=True, dynamic=False)
        return model
    return torch.compile(model, backend=backend, fullgraph=True)


def generation(fn, inputs, steps: int, selections: list, context=None) -> list[int]:
    """Runs `steps` steps; returns how many selection ops ran at each."""
    counts = []
    with torch.no_grad():
        for i in range(steps):
            before = len(selections)
            with toma_fx.step(i, context=context):
                fn(**inputs)
            counts.append(len(selections) - before)
    return counts


@pytest.mark.parametrize("regional", [False, True], ids=["whole", "regional"])
@pytest.mark.parametrize("name", ["sdxl", "flux"])
def test_two_generations_without_recompiles(name, regional, selections, monkeypatch):
    model, inputs = tiny(name)
    fn = compile_model(model, small(select_every=3, inner="aot_eager"), regional)
    generation(fn, inputs, 1, selections)  # compiles
    monkeypatch.setattr(torch._dynamo.config, "error_on_recompile", True)
    frames = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    first = generation(fn, inputs, 10, selections)
    second = generation(fn, inputs, 10, selections)
    per_select = first[0]
    assert per_select > 0
    assert first == second == [per_select, 0, 0] * 3 + [per_select]
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == frames
