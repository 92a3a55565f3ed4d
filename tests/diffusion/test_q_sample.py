from __future__ import annotations

import pytest
import torch

import gencore
from gencore.diffusion import make_schedule, q_sample

diffusers = pytest.importorskip("diffusers")


@pytest.mark.parametrize("name", ["linear", "squaredcos_cap_v2"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_q_sample_matches_diffusers_add_noise(name, dtype):
    s = make_schedule(name)
    sch = diffusers.DDPMScheduler(beta_schedule=name)
    sch.alphas_cumprod = s.alphas_cumprod if dtype == torch.float64 else s.alphas_cumprod.float()
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(5, 3, 7, 3, generator=g, dtype=dtype)
    z = torch.randn(5, 3, 7, 3, generator=g, dtype=dtype)
    t = torch.tensor([0, 1, 500, 998, 999])
    xt, zz = q_sample(x0, t, s, noise=z)
    ref = sch.add_noise(x0, z, t)
    assert xt.dtype == dtype and torch.equal(zz, z)
    # float32: diffusers forms 1 - abar in float32 (cancellation near t = 0); ours in float64
    tol = 1e-14 if dtype == torch.float64 else 2e-5
    assert (xt - ref).abs().max().item() <= tol


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_seeded_q_sample_uses_the_noise_contract(dtype):
    s = make_schedule("linear")
    x0 = torch.randn(4, 10, dtype=dtype)
    t = torch.tensor([3, 50, 700, 999])
    xt, z = q_sample(x0, t, s, seed=5, stream=2, sample_offset=9)
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    z_ref = gencore.randn(4, 10, seed=5, stream=2, sample_offset=9, dtype=acc)
    assert torch.equal(z, z_ref.to(dtype))
    a = s.alphas_cumprod[t].sqrt().to(acc)[:, None]
    b = (1 - s.alphas_cumprod[t]).sqrt().to(acc)[:, None]
    expect = (a * x0.to(acc) + b * z_ref).to(dtype)
    assert torch.equal(xt, expect)
    # sample i of a batch equals the same sample drawn alone at its global index
    xt1, z1 = q_sample(x0[2:3], t[2:3], s, seed=5, stream=2, sample_offset=11)
    assert torch.equal(z1, z[2:3]) and torch.equal(xt1, xt[2:3])


def test_q_sample_default_seed_follows_torch_manual_seed():
    s = make_schedule("linear")
    x0 = torch.zeros(2, 4)
    t = torch.tensor([10, 20])
    torch.manual_seed(1)
    a = q_sample(x0, t, s)[1]
    torch.manual_seed(1)
    b = q_sample(x0, t, s)[1]
    assert torch.equal(a, b) and a.std() > 0.3


def test_q_sample_gradients():
    s = make_schedule("cosine", 50)
    x0 = torch.randn(3, 2, 5, dtype=torch.float64, requires_grad=True)
    z = torch.randn(3, 2, 5, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0, 25, 49])
    assert torch.autograd.gradcheck(lambda a, b: q_sample(a, t, s, noise=b)[0], (x0, z))
    # seeded noise: gradient w.r.t. x0 only
    assert torch.autograd.gradcheck(lambda a: q_sample(a, t, s, seed=3)[0], (x0,))


def test_q_sample_empty_and_noncontiguous():
    s = make_schedule("linear")
    xt, z = q_sample(torch.empty(0, 3), torch.empty(0, dtype=torch.int64), s, seed=0)
    assert xt.shape == (0, 3) and z.shape == (0, 3)
    base = torch.randn(6, 8, dtype=torch.float64)
    x0 = base[::2, ::2]
    t = torch.tensor([1, 2, 3])
    a, za = q_sample(x0, t, s, seed=4)
    b, zb = q_sample(x0.contiguous(), t, s, seed=4)
    assert torch.equal(a, b) and torch.equal(za, zb)


def test_q_sample_bad_inputs():
    s = make_schedule("linear", 100)
    x0 = torch.randn(2, 3)
    with pytest.raises(ValueError, match="t must be in"):
        q_sample(x0, torch.tensor([0, 100]), s, seed=0)
    with pytest.raises(ValueError, match="t must be in"):
        q_sample(x0, torch.tensor([-1, 5]), s, seed=0)
    with pytest.raises(TypeError, match="t must be an integer"):
        q_sample(x0, torch.tensor([1.0, 2.0]), s, seed=0)
    with pytest.raises(ValueError, match="t must have shape"):
        q_sample(x0, torch.tensor([1, 2, 3]), s, seed=0)
    with pytest.raises(TypeError, match="x0"):
        q_sample(x0.long(), torch.tensor([1, 2]), s, seed=0)
    with pytest.raises(ValueError, match="noise must have the shape"):
        q_sample(x0, torch.tensor([1, 2]), s, noise=torch.randn(2, 4))
    with pytest.raises(TypeError, match="schedule"):
        q_sample(x0, torch.tensor([1, 2]), "linear", seed=0)
    with pytest.raises(ValueError, match="either noise"):
        q_sample(x0, torch.tensor([1, 2]), s, seed=0, noise=torch.randn(2, 3))


def test_q_sample_int32_timesteps():
    s = make_schedule("linear")
    x0 = torch.randn(3, 4)
    a = q_sample(x0, torch.tensor([1, 2, 999], dtype=torch.int32), s, seed=2)
    b = q_sample(x0, torch.tensor([1, 2, 999]), s, seed=2)
    assert torch.equal(a[0], b[0])
