"""`toma_backend`: numerics against eager and plain torch.compile, shapes, dtypes, regional compile."""

import pytest
import torch

import toma_fx
from toma_fx import ToMAConfig, toma_backend
from toma_fx.config import MERGE_FORMS, REGION_KINDS
from toma_fx.ops import nodes
from toma_fx.passes import pipeline

from .helpers import FixedDestinations, Recorder, compiled_run, identity_merges, output, small, tiny

ARCHS = ["sdxl", "flux", "sd3", "pixart", "dit", "plain-dit"]


def test_ratio_zero_is_plain_torch_compile():
    model, inputs = tiny("plain-dit")
    plain = compiled_run(model, inputs, "inductor")
    ours = compiled_run(model, inputs, small(ratio=0.0))
    assert torch.equal(plain, ours)


def test_ratio_zero_does_not_touch_the_graph():
    seen = []
    model, inputs = tiny("flux")
    compiled_run(
        model, inputs, lambda gm, ex: seen.append((gm, pipeline.run(gm, ex, ToMAConfig(ratio=0)))) or gm
    )
    gm, result = seen[0]
    assert result.gm is gm and not result.rewrites and not result.skips


@pytest.mark.parametrize("name", ARCHS)
def test_every_token_a_destination_matches_eager(name):
    """With K = S per tile, merge and unmerge are identities: the plumbing (segments, RoPE gathers,
    patched reshapes, unmerge placement) must reproduce the model exactly."""
    model, inputs = tiny(name)
    with torch.no_grad():
        expected = output(model(**inputs))
    rec = Recorder()
    with identity_merges():
        got = compiled_run(model, inputs, small(inner=rec))
    assert any(n.target is nodes.merge for n in rec.graphs[0].graph.nodes if n.op == "call_function")
    torch.testing.assert_close(got, expected, atol=2e-4, rtol=1e-4)


@pytest.mark.parametrize("name", ARCHS)
def test_the_sdpa_form_with_every_token_a_destination_matches_eager(name):
    """`merge_form="sdpa"`: no weights node, merge and unmerge by attention over each tile, the unmerge
    reading the site's input. With K = S and a sharp softmax each token attends to itself alone, so
    the model must come out as it went in."""
    model, inputs = tiny(name)
    with torch.no_grad():
        expected = output(model(**inputs))
    rec = Recorder()
    with identity_merges():
        got = compiled_run(model, inputs, small(inner=rec, merge_form="sdpa", tau=1e5))
    targets = [n.target for n in rec.graphs[0].graph.nodes if n.op == "call_function"]
    assert targets.count(nodes.merge_sdpa) >= 1
    assert nodes.weights not in targets and nodes.merge not in targets
    assert targets.count(nodes.unmerge_sdpa) >= targets.count(nodes.merge_sdpa)
    torch.testing.assert_close(got, expected, atol=2e-4, rtol=1e-4)


@pytest.mark.parametrize("form", MERGE_FORMS)
@pytest.mark.parametrize("name", ["flux"])  # RoPE gathers, text segments, patched reshapes
def test_inductor_agrees_with_the_rewritten_graph_run_eagerly(name, form):
    """Injected (value-independent) destinations: Inductor's kernels against the same graph in eager."""
    model, inputs = tiny(name)
    eager = compiled_run(model, inputs, small(inner=FixedDestinations(), merge_form=form))
    lowered = compiled_run(model, inputs, small(inner=FixedDestinations(then=_inductor), merge_form=form))
    torch.testing.assert_close(lowered, eager, atol=1e-4, rtol=1e-4)
    with torch.no_grad():
        unmerged = output(model(**inputs))
    assert not torch.allclose(eager, unmerged, atol=1e-4)  # merging did change something


def _inductor(gm, example_inputs):
    from torch._inductor.compile_fx import compile_fx

    return compile_fx(gm, example_inputs)


@pytest.mark.parametrize("name", ["sdxl", "flux", "plain-dit"])
@pytest.mark.parametrize(
    "batch, latent, dtype",
    [
        (3, (48, 32), torch.float32),  # odd batch, non-square
        (1, (16, 16), torch.bfloat16),
    ],
)
def test_shape_and_dtype_preserved(name, batch, latent, dtype):
    model, inputs = tiny(name, batch=batch, latent=latent, dtype=dtype)
    with torch.no_grad():
        expected = output(model(**inputs))
    rec = Recorder()
    got = compiled_run(model, inputs, small(inner=rec))
    assert got.shape == expected.shape and got.dtype == expected.dtype
    assert any(getattr(n.target, "__name__", "") == "unmerge" for n in rec.graphs[0].graph.nodes)
    assert torch.isfinite(got.float()).all()


@pytest.mark.parametrize("name, grid", [("flux", (8, 8)), ("sdxl", None)])
def test_regional_compile(name, grid):
    """`compile_repeated_blocks`: one graph per block class, each rewritten, outputs still right-shaped."""
    model, inputs = tiny(name)
    with torch.no_grad():
        expected = output(model(**inputs))
    rec = Recorder()
    # dynamic=False as `toma_fx.apply` compiles: a recompile would otherwise trace symbolic token counts,
    # which the pass leaves alone (with its reason).
    model.compile_repeated_blocks(
        backend=small(inner=rec, grid=grid or (16, 16)), fullgraph=True, dynamic=False
    )
    with torch.no_grad():
        got = output(model(**inputs))
        output(model(**inputs))
    assert got.shape == expected.shape
    merges = [sum(getattr(n.target, "__name__", "") == "merge" for n in g.graph.nodes) for g in rec.graphs]
    assert len(merges) >= 2 and all(merges), f"merges per block graph: {merges}"  # every block graph


def test_backend_by_name_with_mode_and_options(monkeypatch):
    """`mode=` and `options=` reach compile_fx unchanged; `toma.*` options configure ToMA."""
    import torch._inductor.compile_fx as cfx

    calls = []
    monkeypatch.setattr(
        cfx, "compile_fx", lambda gm, ex, config_patches=None: calls.append(config_patches) or gm
    )
    model, inputs = tiny("plain-dit")
    torch.compile(model, backend="toma", mode="max-autotune-no-cudagraphs")(**inputs)
    assert calls[-1] == torch._inductor.list_mode_options("max-autotune-no-cudagraphs")
    torch._dynamo.reset()
    rec = []
    monkeypatch.setattr(
        toma_fx.backend, "run", lambda gm, ex, config, call_grid: rec.append(config) or pipeline.Result(gm)
    )
    torch.compile(model, backend="toma", options={"toma.ratio": 0.25, "epilogue_fusion": False})(**inputs)
    assert calls[-1] == {"epilogue_fusion": False}
    assert rec[-1].ratio == 0.25


def test_symbolic_shapes_are_skipped_with_a_reason():
    model, inputs = tiny("plain-dit")
    seen = []

    def backend(gm, ex):
        seen.append(pipeline.run(gm, ex, ToMAConfig(min_tokens=16)))
        return gm

    torch._dynamo.reset()
    with torch.no_grad():
        torch.compile(model, backend=backend, dynamic=True)(**inputs)
    assert not seen[0].rewrites
    assert [s.why.split(":")[0] for s in seen[0].skips] == ["symbolic shapes"]


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("ratio", 1.0, r"ratio must be a number in \[0, 1\)"),
        ("ratio", -0.1, r"ratio must be"),
        ("ratio", "0.5", r"ratio must be"),
        ("tile", (0, 4), r"tile must be 2 or 3 ints >= 1"),
        ("tile", 4, r"tile must be 2 or 3 ints"),
        ("tile", (2, 2, 2, 2), r"tile must be 2 or 3 ints"),
        ("grid", (64,), r"grid must be 2 or 3 ints"),
        ("kinds", {"self", "conv"}, r"kinds must be a subset of"),
        ("min_tokens", 0, r"min_tokens must be an int >= 1"),
        ("tau", 0, r"tau must be a finite number > 0"),
        ("share_weights", "yes", r"share_weights must be True or False"),
        ("select_noise", -1.0, r"select_noise must be a finite number >= 0, got -1.0"),
        ("select_noise", float("inf"), r"select_noise must be a finite number >= 0"),
        ("select_noise", True, r"select_noise must be a finite number >= 0, got True"),
        ("select_avoid", 1.5, r"select_avoid must be a number in \[0, 1\], got 1.5"),
        ("select_avoid", -0.1, r"select_avoid must be a number in \[0, 1\]"),
        ("merge_form", "attention", r"merge_form must be one of \['assignment', 'sdpa'\], got 'attention'"),
        ("stride", 2, r"unknown ToMAConfig fields \['stride'\]"),
    ],
)
def test_bad_configuration_fails_at_configuration_time(field, value, match):
    with pytest.raises(ValueError, match=match):
        toma_backend.configure(**{field: value})


@pytest.mark.parametrize("field", ["share_weights", "reuse_weights"])
def test_the_sdpa_form_refuses_kept_weights(field):
    with pytest.raises(ValueError, match=rf"{field}=True needs merge_form='assignment'"):
        ToMAConfig(merge_form="sdpa", **{field: True})


def test_config_round_trips_through_json():
    import json

    c = ToMAConfig(ratio=0.25, tile=(8, 8), kinds={"self", "mlp"}, grid=(64, 48), share_weights=True)
    assert ToMAConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    c = ToMAConfig(merge_form="sdpa")
    assert ToMAConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    assert ToMAConfig().kinds == REGION_KINDS


def test_public_api():
    assert {"toma_backend", "ToMAConfig", "explain"} <= set(toma_fx.__all__)
    with pytest.raises(ValueError, match="config must be a ToMAConfig"):
        toma_backend.configure({"ratio": 0.5})
    with pytest.raises(ValueError, match="config must be a ToMAConfig"):
        toma_fx.explain(torch.nn.Linear(2, 2), torch.randn(1, 2), config={"ratio": 0.5})


def test_a_failing_pass_leaves_the_graph_as_traced(monkeypatch):
    def broken(*args):
        raise RuntimeError("a bug in discovery")

    monkeypatch.setattr(pipeline, "discover", broken)
    model, inputs = tiny("plain-dit")
    rec = Recorder()
    with pytest.warns(
        UserWarning, match=r"rewriting graph 0/0 \(PlainDiT.forward\) failed.*a bug in discovery"
    ):
        got = compiled_run(model, inputs, small(inner=rec))
    with torch.no_grad():
        torch.testing.assert_close(got, output(model(**inputs)))
    assert not any(getattr(n.target, "__name__", "") == "merge" for n in rec.graphs[0].graph.nodes)


def test_a_failing_lowering_falls_back_to_the_traced_graph():
    def inner(gm, example_inputs):
        if any(getattr(n.target, "__name__", "") == "merge" for n in gm.graph.nodes):
            raise RuntimeError("lowering failed")
        return gm.forward

    model, inputs = tiny("plain-dit")
    got = compiled_run(model, inputs, small(inner=inner))
    with torch.no_grad():
        torch.testing.assert_close(got, output(model(**inputs)))


def test_graph_copies_keep_parameters_static():
    """AOTAutograd marks a Dynamo graph's parameters static (CUDA graphs then skip copying them) from
    input sources that a plain deepcopy drops; the passes' copies keep them."""
    from torch._functorch._aot_autograd.frontend_utils import _try_get_metadata_from_dynamo

    def static_inputs(gm):
        n = len(gm.graph.find_nodes(op="placeholder"))
        return _try_get_metadata_from_dynamo(gm, {}, n, [])[1]

    seen = []
    model, inputs = tiny("plain-dit", batch=1)
    compiled_run(model, inputs, lambda gm, ex: seen.append(gm) or gm.forward)
    expected = static_inputs(seen[0])
    assert len(expected) > 10
    assert static_inputs(pipeline.copy_graph(seen[0])) == expected


def test_a_rewritten_graph_is_cached_like_a_plain_one():
    """AOTAutograd's cache takes rewritten graphs (their functions are marked cacheable, keyed to the
    operators' source): a second compile of the same graph loads it, with the same outputs."""
    from torch._dynamo.utils import counters

    model, inputs = tiny("plain-dit", batch=1)
    runs = []
    for _ in range(2):
        torch._dynamo.reset()
        counters.clear()
        with torch.no_grad():
            runs.append(output(torch.compile(model, backend=small(), fullgraph=True)(**inputs)))
        results = dict(counters["aot_autograd"])
    assert results.get("autograd_cache_hit") == 1, results
    assert torch.equal(runs[0], runs[1])
    functions = ("select", "weights", "merge", "unmerge", "merge_sdpa", "unmerge_sdpa", "gather")
    assert set(nodes.cache_keys()) == {f"toma_fx.ops.nodes.{f}" for f in functions}
