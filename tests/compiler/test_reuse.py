"""Reuse-guarded selection: the schedule picks select / reuse / off per call, with no recompiles."""

import pytest
import torch

import toma_fx
from toma_fx.architectures import build, example_inputs
from toma_fx.config import MERGE_FORMS
from toma_fx.ops import select as select_module

from .helpers import Recorder, SharedPool, output, small, tiny


@pytest.fixture
def selections(monkeypatch):
    """Counts runs of the selection op (its CPU body), compiled code included."""
    calls = []
    real = select_module.facility_location_reference

    def counted(metric, k, gain_scale=None):
        calls.append(k)
        return real(metric, k, gain_scale)

    monkeypatch.setattr(select_module, "facility_location_reference", counted)
    return calls


def compile_model(model, backend, regional: bool):
    if regional:  # dynamic=False: each token-grid size of a UNet gets its own static (mergeable) graph
        backend = backend.configure(grid=(8, 8))  # block graphs see tokens only: the tiny 16x16 latents'
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


@pytest.mark.parametrize(  # SDXL whole is left out for time: its trace alone takes the longest
    "name, regional, form",
    [("sdxl", True, "assignment"), ("flux", False, "assignment"), ("flux", True, "assignment"),
     ("flux", True, "sdpa")],
    ids=["sdxl-regional", "flux-whole", "flux-regional", "flux-regional-sdpa-form"],
)  # fmt: skip
def test_two_generations_without_recompiles(name, regional, form, selections):
    model, inputs = tiny(name)
    fn = compile_model(model, small(select_every=3, inner="aot_eager", merge_form=form), regional)
    generation(fn, inputs, 1, selections)  # compiles
    frames = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    with torch._dynamo.config.patch(error_on_recompile=True):
        first = generation(fn, inputs, 4, selections)
        second = generation(fn, inputs, 4, selections)
    per_select = first[0]
    assert per_select > 0
    assert first == second == [per_select, 0, 0, per_select]
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == frames


@pytest.mark.parametrize(
    "schedule",
    [dict(warmup_steps=1, merge_every=2, select_every=4), dict(merge_every=3), dict(select_every=2)],
)
def test_selection_runs_exactly_on_select_steps(schedule, selections):
    from toma_fx.schedule import Decision, decide

    model, inputs = tiny("plain-dit", batch=1)
    backend = small(inner="aot_eager", **schedule)
    counts = generation(torch.compile(model, backend=backend, fullgraph=True), inputs, 10, selections)
    config = backend.config
    expected = [decide(config, i) is Decision.SELECT for i in range(10)]
    assert [c > 0 for c in counts] == expected
    assert len(set(c for c in counts if c)) == 1


def at_step(fn, inputs, index, context=None) -> torch.Tensor:
    with torch.no_grad(), toma_fx.step(index, context=context):
        return output(fn(**inputs)).clone()


def flux_inputs(model, seed, batch=1):
    return example_inputs("flux", model, batch=batch, latent=(16, 16), seed=seed)


@pytest.mark.parametrize("form", MERGE_FORMS)
def test_reuse_step_equals_select_step_with_inductor(form, selections):
    """Same inputs at a select step and at the reuse step after it: the reuse graph, fed the kept
    destinations, computes bit for bit what the select graph did."""
    model, inputs = tiny("plain-dit", batch=1)
    fn = torch.compile(model, backend=small(select_every=2, merge_form=form), fullgraph=True)
    selected = at_step(fn, inputs, 0)
    ran = len(selections)
    reused = at_step(fn, inputs, 1)
    assert ran > 0 and len(selections) == ran
    assert torch.equal(selected, reused)


def test_step_noise_changes_destinations_by_step_and_repeats_them_on_a_rerun(monkeypatch):
    """With `select_noise`, the same tokens at steps 0 and 2 get different destinations (facility
    location alone picks the same ones), the reuse step between them keeps step 0's, and a second
    generation repeats the first bit for bit, without recompiling."""
    picks = []
    real = select_module.facility_location_reference

    def recorded(metric, k, gain_scale=None):
        assert gain_scale is not None
        picks.append(real(metric, k, gain_scale))
        return picks[-1]

    monkeypatch.setattr(select_module, "facility_location_reference", recorded)
    model, inputs = tiny("plain-dit", batch=1)
    fn = torch.compile(
        model, backend=small(select_noise=1.0, select_every=2, inner="aot_eager"), fullgraph=True
    )

    def run() -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        outs, by_step = [], []
        for i in range(3):
            picks.clear()
            outs.append(at_step(fn, inputs, i))
            by_step.append(list(picks))
        return outs, by_step

    first, first_picks = run()  # compiles
    with torch._dynamo.config.patch(error_on_recompile=True):
        second, second_picks = run()
    assert [len(p) > 0 for p in first_picks] == [True, False, True]
    assert any(not torch.equal(a, b) for a, b in zip(first_picks[0], first_picks[2]))
    assert torch.equal(first[0], first[1])  # the reuse step keeps step 0's destinations
    assert not torch.equal(first[0], first[2])
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    for a, b in zip(first_picks, second_picks):
        assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_select_avoid_moves_each_fresh_selection_off_the_last_and_repeats_on_a_rerun(monkeypatch):
    """With `select_avoid=0` at ratio 0.5, each step's destinations are the complement of the last
    step's in every tile (the dispatcher hands the block's kept destinations to the fresh selection),
    the first step avoids nothing, and a second generation repeats the first without recompiling."""
    picks, scales = [], []
    real = select_module.facility_location_reference

    def recorded(metric, k, gain_scale=None):
        scales.append(gain_scale)
        picks.append(real(metric, k, gain_scale))
        return picks[-1]

    monkeypatch.setattr(select_module, "facility_location_reference", recorded)
    model, inputs = tiny("plain-dit", batch=1)
    fn = torch.compile(
        model, backend=small(select_noise=0.0, select_avoid=0.0, inner="aot_eager"), fullgraph=True
    )

    def run() -> list[list[torch.Tensor]]:
        by_step = []
        for i in range(3):
            picks.clear()
            at_step(fn, inputs, i)
            by_step.append(list(picks))
        return by_step

    first = run()  # compiles
    with torch._dynamo.config.patch(error_on_recompile=True):
        second = run()
    assert all(len(p) == len(first[0]) > 0 for p in first)
    assert all(torch.all(s == 1) for s in scales[: len(first[0])])  # the first step has none to avoid
    for last, now in zip(first, first[1:]):
        for a, b in zip(last, now):
            assert not (a[:, :, None] == b[:, None, :]).any()  # K = S / 2: the other half of each tile
    for a, b in zip(first, second):
        assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_off_steps_are_plain_torch_compile():
    model, inputs = tiny("plain-dit", batch=1)
    with torch.no_grad():
        plain = output(torch.compile(model, backend="aot_eager", fullgraph=True)(**inputs))
    torch._dynamo.reset()
    fn = torch.compile(model, backend=small(warmup_steps=1, inner="aot_eager"), fullgraph=True)
    assert torch.equal(at_step(fn, inputs, 0), plain)
    assert not torch.allclose(at_step(fn, inputs, 1), plain, atol=1e-4)


def fresh(model, backend):
    torch._dynamo.reset()
    backend.state.clear()
    toma_fx.reset_steps()
    return torch.compile(model, backend=backend, fullgraph=True)


def test_the_default_counts_calls_as_steps_until_reset_steps():
    """With the default step noise and avoidance, a bare-backend model called outside `toma_fx.step`
    counts its calls as steps: the same inputs give another output at the next call, and after
    `toma_fx.reset_steps()` the calls repeat the first ones bit for bit, without recompiling."""
    model, inputs = tiny("plain-dit", batch=1)
    fn = fresh(model, small(inner="aot_eager"))
    with torch.no_grad():
        first = [output(fn(**inputs)) for _ in range(3)]
        toma_fx.reset_steps()
        with torch._dynamo.config.patch(error_on_recompile=True):
            again = [output(fn(**inputs)) for _ in range(3)]
    assert not torch.equal(first[0], first[1]) and not torch.equal(first[1], first[2])
    assert all(torch.equal(a, b) for a, b in zip(first, again))


def test_cfg_as_two_calls_keeps_a_selection_per_branch():
    """cond and uncond, called in turn, each reuse their own destinations, even when every graph output
    is overwritten by the next call (as in CUDA graphs' memory pool under reduce-overhead)."""
    model, _ = tiny("flux", batch=1)
    inputs = {
        "cond": [flux_inputs(model, s) for s in (1, 2, 3)],
        "uncond": [flux_inputs(model, s) for s in (4, 5, 6)],
    }
    backend = small(select_every=3, inner=SharedPool())
    expected = {}
    for context, steps in inputs.items():
        fn = fresh(model, backend)
        expected[context] = [at_step(fn, x, i, context) for i, x in enumerate(steps)]
    fn = fresh(model, backend)
    for i in range(3):
        for context, steps in inputs.items():
            assert torch.equal(at_step(fn, steps[i], i, context), expected[context][i]), (context, i)
    # without branch names the reuse steps of "cond" would take the destinations "uncond" selected
    fn = fresh(model, backend)
    mixed = [[at_step(fn, steps[i], i) for steps in inputs.values()] for i in range(3)]
    assert not torch.equal(mixed[1][0], expected["cond"][1])


def test_cfg_in_one_batch_selects_per_sample():
    """A batch of 2 (CFG, or 2 prompts) gives each sample the destinations it would get alone."""
    model, _ = tiny("flux", batch=1)
    a, b = flux_inputs(model, 1), flux_inputs(model, 2)
    both = {
        k: torch.cat([a[k], b[k]])
        if k in ("hidden_states", "encoder_hidden_states", "pooled_projections", "timestep", "guidance")
        else a[k]
        for k in a
    }
    backend = small(select_every=2, inner="aot_eager")
    alone = []
    for x in (a, b):
        fn = fresh(model, backend)
        alone.append(torch.cat([at_step(fn, x, 0), at_step(fn, x, 1)]))
    fn = fresh(model, backend)
    batched = torch.stack([at_step(fn, both, 0), at_step(fn, both, 1)], dim=1)  # (2 samples, 2 steps, ...)
    for sample, expected in enumerate(alone):
        torch.testing.assert_close(batched[sample], expected, atol=1e-5, rtol=1e-5)


def test_kept_selections_survive_recompiles(selections):
    """State is keyed by the block's weights, not by the compiled artifact."""
    model, inputs = tiny("flux", batch=1)
    backend = small(select_every=3, inner="aot_eager")
    fn = fresh(model, backend)
    expected = [at_step(fn, inputs, i) for i in range(2)]
    fn = fresh(model, backend)
    at_step(fn, inputs, 0)
    torch._dynamo.reset()  # the next call recompiles: a new artifact, a new dispatcher
    ran = len(selections)
    assert torch.equal(at_step(fn, inputs, 1), expected[1])
    assert len(selections) == ran  # reused what the first artifact kept


def test_state_does_not_grow_over_generations():
    model, inputs = tiny("plain-dit", batch=1)
    backend = small(select_every=2, reuse_weights=True, inner="aot_eager")
    fn = torch.compile(model, backend=backend, fullgraph=True)
    state = backend.state

    def generation():
        for i in range(3):
            for context in ("cond", "uncond"):
                at_step(fn, inputs, i, context)

    generation()
    size = state.nbytes(), len(state)
    assert size[0] > 0
    for _ in range(20):  # a leak of one entry per generation would show
        generation()
    assert (state.nbytes(), len(state)) == size


def test_diffusers_cache_context_and_scheduler_give_the_step(selections):
    """The diffusers way: branch names from `cache_context`, steps from the scheduler, a new
    generation from `set_timesteps`, also after an interrupted one."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    class Pipeline:  # what the tracker reads of a FluxPipeline
        transformer, scheduler = tiny("flux", batch=1)[0], FlowMatchEulerDiscreteScheduler()

    pipe = Pipeline()
    model, inputs = pipe.transformer, flux_inputs(pipe.transformer, 0)
    tracker = toma_fx.track_steps(pipe)
    fn = torch.compile(model, backend=small(select_every=3, inner="aot_eager"), fullgraph=True)

    def generate(steps, stop=None):
        pipe.scheduler.set_timesteps(steps)
        latents, counts = inputs["hidden_states"], []
        for t in pipe.scheduler.timesteps[:stop]:
            before = len(selections)
            with torch.no_grad():
                for branch in ("cond", "uncond"):
                    with model.cache_context(branch):
                        noise = output(fn(**{**inputs, "hidden_states": latents}))
            latents = pipe.scheduler.step(noise, t, latents).prev_sample
            counts.append(len(selections) - before)
        return counts

    first = generate(7)
    per_select = first[0]
    assert per_select > 0 and first == [per_select, 0, 0, per_select, 0, 0, per_select]
    generate(7, stop=4)  # interrupted
    assert generate(7) == first
    tracker.remove()
    assert "toma_fx_steps" not in model._diffusers_hook.hooks


def test_variant_graphs():
    """select computes destinations and returns them, or takes them as inputs when its reuse flag is set
    (one graph for both kinds of step), with the step as its noise's salt; keep takes the merge weights
    too; off is the traced graph."""
    from toma_fx.ops import nodes

    rec = Recorder()
    model, inputs = tiny("plain-dit", batch=1)
    config = dict(select_every=3, reuse_weights=True, warmup_steps=1, share_destinations=False)
    at_step(torch.compile(model, backend=small(inner=rec, **config), fullgraph=True), inputs, 0)
    select, keep, off = rec.graphs

    def count(gm, target):
        return len(gm.graph.find_nodes(op="call_function", target=target))

    def extra_inputs(gm):
        return [n.name for n in gm.graph.find_nodes(op="placeholder") if n.name.startswith("toma_")]

    sites = count(select, nodes.merge)
    assert count(select, nodes.select) == sites == count(select, nodes.weights) == 4
    parts = ("dst", "reuse", "salt")  # salt: the step, which keys the default step noise
    assert extra_inputs(select) == [f"toma_{part}_{i}_0" for i in range(sites) for part in parts]
    assert all(len(n.args) == 6 for n in select.graph.find_nodes(op="call_function", target=nodes.select))
    assert count(keep, nodes.select) == count(keep, nodes.weights) == 0 and count(keep, nodes.merge) == sites
    assert extra_inputs(keep)[:2] == ["toma_dst_0_0", "toma_dst_1_0"]
    assert count(off, nodes.merge) == 0


def test_tracking_does_not_keep_a_deleted_model_alive():
    import gc
    import weakref

    from diffusers import FlowMatchEulerDiscreteScheduler

    from toma_fx import steps

    class Pipeline:
        transformer, scheduler = tiny("flux", batch=1)[0], FlowMatchEulerDiscreteScheduler()

    pipe = Pipeline()
    toma_fx.track_steps(pipe)
    alive = weakref.ref(Pipeline.transformer)
    del pipe, Pipeline
    gc.collect()
    assert alive() is None and len(steps._trackers) == 0


@pytest.mark.parametrize(
    "device",
    ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))],
)
def test_reduce_overhead_mode(device):
    """Under CUDA graphs (skipped by Inductor on CPU) a later replay must not overwrite kept tensors."""
    model, _ = tiny("plain-dit", batch=1)
    model = model.to(device)
    inputs = [example_inputs("plain-dit", model, latent=(16, 16), seed=s) for s in (1, 2)]
    fn = torch.compile(model, backend=small(select_every=2), mode="reduce-overhead", fullgraph=True)
    first = at_step(fn, inputs[0], 0)
    at_step(fn, inputs[1], 0, context="other")  # replays overwrite the pool in between
    assert torch.equal(at_step(fn, inputs[0], 1), first)


def test_two_models_interleaved_call_by_call_match_each_run_alone():
    """Kept destinations, weights and chains belong to their model: two Flux models (other weights,
    same block classes and token sets), stepped in turn with reuse, give what each gives alone (compiled
    regionally, as `toma_fx.apply` does)."""

    def model_and_fn(seed):
        model = build("flux", "tiny", seed=seed).eval()
        return model, compile_model(model, small(select_every=2, inner="aot_eager"), regional=True)

    def steps(fn, inputs, indices):
        return [at_step(fn, inputs, i) for i in indices]

    (a, fa), (b, fb) = model_and_fn(1), model_and_fn(2)
    inputs_a, inputs_b = flux_inputs(a, seed=3), flux_inputs(b, seed=4)
    alone_a, alone_b = steps(fa, inputs_a, range(4)), steps(fb, inputs_b, range(4))
    interleaved = [(at_step(fa, inputs_a, i), at_step(fb, inputs_b, i)) for i in range(4)]
    assert all(torch.equal(x, y) for x, y in zip(alone_a, [p[0] for p in interleaved]))
    assert all(torch.equal(x, y) for x, y in zip(alone_b, [p[1] for p in interleaved]))
