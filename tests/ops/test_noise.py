"""Step noise: a hash that matches MurmurHash3's finaliser, normals that look normal, and scales that
repeat for a step and change between steps."""

import math

import pytest
import torch

from toma_fx.ops.noise import StepNoise, hash32, normal_from_hash, step_noise


def fmix32(h: int) -> int:
    """MurmurHash3's 32-bit finaliser, in Python integers."""
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    return h ^ (h >> 16)


def test_hash_matches_murmur3_on_the_whole_range():
    values = [0, 1, 2, 0xDEADBEEF, 0xFFFFFFFF, 0x80000000, *torch.randint(0, 2**32, (200,)).tolist()]
    got = hash32(torch.tensor(values, dtype=torch.int64)).tolist()
    assert got == [fmix32(v) for v in values]


def test_normals_have_the_moments_of_a_standard_normal():
    z = normal_from_hash(torch.arange(200_000), torch.tensor(7))
    assert z.dtype == torch.float32 and torch.isfinite(z).all()
    assert abs(z.mean().item()) < 0.01 and abs(z.std().item() - 1) < 0.01
    within_one = (z.abs() < 1).float().mean().item()
    assert abs(within_one - math.erf(1 / math.sqrt(2))) < 0.005


def test_salts_give_independent_draws_and_the_same_salt_the_same_draw():
    counter = torch.arange(50_000)
    a, again, b = (normal_from_hash(counter, torch.tensor(s)) for s in (3, 3, 4))
    assert torch.equal(a, again)
    assert abs(torch.corrcoef(torch.stack([a, b]))[0, 1].item()) < 0.02


@pytest.mark.parametrize("sigma", [0.5, 2.0])
def test_scales_are_log_normal_and_differ_by_step_and_block(sigma):
    shape = (64, 8, 16)
    step3 = StepNoise(torch.tensor(3), sigma)
    s = step3.scales(0, shape)
    assert s.shape == shape and (s > 0).all()
    assert abs(s.log().std().item() - sigma) < 0.03 * sigma
    assert torch.equal(s, StepNoise(torch.tensor(3), sigma).scales(0, shape))
    assert not torch.equal(s, StepNoise(torch.tensor(4), sigma).scales(0, shape))
    assert not torch.equal(s, step3.scales(1, shape))


def test_scales_compile_to_the_same_values_without_recompiling_per_step():
    shape = (4, 3, 16)
    fn = torch.compile(lambda salt: StepNoise(salt, 1.0).scales(0, shape), fullgraph=True, dynamic=False)
    fn(torch.tensor(0))
    with torch._dynamo.config.patch(error_on_recompile=True):
        for step in (1, 2, 3):
            eager = StepNoise(torch.tensor(step), 1.0).scales(0, shape)
            assert torch.equal(fn(torch.tensor(step)), eager)  # one op: Inductor calls it, computes nothing


def test_the_table_is_one_opaque_op_in_compiled_code():
    """Inductor calls the op rather than lowering the hash (lowering it took over 30 s per graph)."""
    from torch._inductor.utils import run_and_get_code

    fn = torch.compile(lambda salt: StepNoise(salt, 1.0).scales(0, (4, 3, 16)) * 2, fullgraph=True)
    _, (code,) = run_and_get_code(fn, torch.tensor(5))
    assert "toma_fx.step_noise" in code
    assert "51819" not in code  # 0xCA6B, the low half of the first murmur constant, as a lowered literal


def test_the_op_passes_opcheck_and_its_kept_cpu_tables_are_not_shared():
    torch.library.opcheck(step_noise, (torch.tensor(7), 1.0, 0, 4, 3, 16))
    first = step_noise(torch.tensor(7), 1.0, 0, 4, 3, 16)
    first.zero_()  # a caller writing into the result must not change the next call's
    again = step_noise(torch.tensor(7), 1.0, 0, 4, 3, 16)
    counter = torch.arange(4 * 3 * 16).view(4, 3, 16)
    assert torch.equal(again, torch.exp(normal_from_hash(counter, torch.tensor(7 * 8 + 0))))
