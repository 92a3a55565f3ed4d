"""gencore.vae: fused reparameterize / gaussian_kl / reparameterize_kl against the reference,
torch.distributions, gradcheck, opcheck, torch.compile, invariances and bad input."""

from __future__ import annotations

import pytest
import torch
from tests._util import assert_close_to_ref
from torch.distributions import Normal, kl_divergence

import gencore
import gencore.vae as V
from gencore import _native
from gencore.vae import reference as R

SHAPES = [(5, 7), (3, 4, 5), (64, 40), (9, 2), (10,), (2, 3, 4, 4), (1, 1030)]
LOW = [torch.float32, torch.float16, torch.bfloat16]


def _inputs(shape, dtype=torch.float64, device="cpu", scale=1.0):
    g = torch.Generator().manual_seed(hash(shape) % 2**31)
    mu = torch.randn(shape, generator=g, dtype=torch.float64) * scale
    lv = torch.randn(shape, generator=g, dtype=torch.float64) * scale
    return mu.to(dtype=dtype, device=device), lv.to(dtype=dtype, device=device)


def _nonbatch(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(range(1, t.dim()))


@pytest.mark.parametrize("shape", SHAPES)
def test_float64_matches_reference(shape, device):
    mu, lv = _inputs(shape, device=device)
    kw = {"seed": 2**63 + 5, "stream": 3, "sample_offset": 2**40}
    z, kl = V.reparameterize_kl(mu, lv, **kw)
    zr, klr = R.reparameterize_kl(mu.cpu(), lv.cpu(), **kw)
    torch.testing.assert_close(z.cpu(), zr, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(kl.cpu(), klr, rtol=1e-12, atol=1e-12)
    assert torch.equal(V.reparameterize(mu, lv, **kw), z)
    assert torch.equal(V.gaussian_kl(mu, lv), kl)


@pytest.mark.parametrize("shape", [(5, 7), (64, 40), (9, 2), (2, 3, 4, 4)])
@pytest.mark.parametrize("dtype", LOW)
def test_low_precision_against_float64(shape, dtype, device):
    mu64, lv64 = _inputs(shape, device=device)
    mu, lv = mu64.to(dtype), lv64.to(dtype)
    eps = gencore.randn(shape, seed=7, stream=1, device=device)  # float32 eps, as the kernel draws
    z, kl = V.reparameterize_kl(mu, lv, seed=7, stream=1)
    # float64 reference on the rounded inputs with the same eps; torch in the same dtype.
    zr = mu.double() + torch.exp(0.5 * lv.double()) * eps.double()
    klr = 0.5 * (mu.double() ** 2 + lv.double().exp() - 1 - lv.double()).sum(_nonbatch(mu))
    zt = mu + torch.exp(0.5 * lv) * eps.to(dtype)
    klt = 0.5 * (mu * mu + lv.exp() - 1 - lv).sum(_nonbatch(mu))
    assert z.dtype == dtype and kl.dtype == dtype
    assert_close_to_ref(z, zt, zr, atol=1e-6)
    assert_close_to_ref(kl, klt, klr, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_eps_follows_the_noise_contract(dtype, device):
    mu = torch.zeros(6, 3, 5, dtype=dtype, device=device)
    z = V.reparameterize(mu, torch.zeros_like(mu), seed=12, stream=4, sample_offset=100)
    assert torch.equal(z, gencore.randn(6, 3, 5, seed=12, stream=4, sample_offset=100, dtype=dtype, device=device))


@pytest.mark.parametrize("shape", [(5, 7), (3, 4, 5), (8, 2)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("use_seed", [True, False])
def test_oracle_torch_distributions(shape, dtype, use_seed, monkeypatch, device):
    """Normal(mu, std).rsample() with the same eps and kl_divergence(...).sum, values and grads."""
    mu0, lv0 = _inputs(shape, dtype, device)
    eps = gencore.randn(shape, seed=3, stream=9, dtype=dtype, device=device)
    monkeypatch.setattr(torch.distributions.normal, "_standard_normal", lambda s, dtype, device: eps.clone())

    mu, lv = mu0.clone().requires_grad_(), lv0.clone().requires_grad_()
    q = Normal(mu, torch.exp(0.5 * lv))
    z_o = q.rsample()
    kl_o = kl_divergence(q, Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum(_nonbatch(mu))
    gz, gk = torch.randn_like(z_o), torch.randn_like(kl_o)
    g_o = torch.autograd.grad((z_o * gz).sum() + (kl_o * gk).sum(), (mu, lv))

    mu2, lv2 = mu0.clone().requires_grad_(), lv0.clone().requires_grad_()
    kw = {"seed": 3, "stream": 9} if use_seed else {"noise": eps}
    z, kl = V.reparameterize_kl(mu2, lv2, **kw)
    g = torch.autograd.grad((z * gz).sum() + (kl * gk).sum(), (mu2, lv2))
    tol = {"rtol": 1e-12, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 2e-6, "atol": 2e-6}
    torch.testing.assert_close(z, z_o.detach(), **tol)
    torch.testing.assert_close(kl, kl_o.detach(), **{k: v * 10 for k, v in tol.items()})
    for a, b in zip(g, g_o):
        torch.testing.assert_close(a, b, **tol)


@pytest.mark.parametrize("shape", [(4, 5), (3, 2, 3), (6, 1)])
def test_gradcheck(shape, device):
    mu, lv = _inputs(shape, device=device, scale=0.5)
    mu.requires_grad_()
    lv.requires_grad_()
    nz = torch.randn(shape, dtype=torch.float64, device=device, requires_grad=True)
    assert torch.autograd.gradcheck(lambda m, v: V.reparameterize(m, v, seed=5, stream=1), (mu, lv))
    assert torch.autograd.gradcheck(lambda m, v: V.gaussian_kl(m, v), (mu, lv))
    assert torch.autograd.gradcheck(lambda m, v: V.reparameterize_kl(m, v, seed=2**64 - 1), (mu, lv))
    assert torch.autograd.gradcheck(lambda m, v, e: V.reparameterize_kl(m, v, noise=e), (mu, lv, nz))
    # Only one output used: the other gradient is absent or zero.
    assert torch.autograd.gradcheck(lambda m, v: V.reparameterize_kl(m, v, seed=1)[1], (mu, lv))
    assert torch.autograd.gradcheck(lambda m, v: V.reparameterize_kl(m, v, seed=1)[0], (mu, lv))


def test_opcheck():
    mu, lv = _inputs((4, 6), torch.float32)
    nz = torch.randn(4, 6)
    gz, gk = torch.randn(4, 6), torch.randn(4)
    ops = torch.ops.gencore
    for noise in (None, nz):
        torch.library.opcheck(ops.vae_reparameterize.default, (mu, lv, noise, 7, 2, 5))
        torch.library.opcheck(ops.vae_reparameterize_kl.default, (mu, lv, noise, -7, 0, -(2**63)))
        torch.library.opcheck(ops.vae_backward.default, (mu, lv, noise, gz, gk, 7, 2, 5))
    torch.library.opcheck(ops.vae_gaussian_kl.default, (mu, lv))
    torch.library.opcheck(ops.vae_backward.default, (mu, lv, None, None, gk, 0, 0, 0))
    torch.library.opcheck(ops.vae_backward.default, (mu, lv, None, gz, None, 3, 1, 0))
    m3, l3 = _inputs((2, 3, 4), torch.float64)
    torch.library.opcheck(ops.vae_reparameterize_kl.default, (m3.requires_grad_(), l3.requires_grad_(), None, 1, 2, 3))


def test_torch_compile_fullgraph():
    def f(mu, lv):
        z, kl = V.reparameterize_kl(mu, lv, seed=4, stream=2)
        z2 = V.reparameterize(mu, lv, noise=torch.ones_like(mu))
        return z.sum() + kl.sum() + z2.sum() + V.gaussian_kl(mu, lv).sum()

    mu, lv = _inputs((6, 5), torch.float32)
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    a = (mu.clone().requires_grad_(), lv.clone().requires_grad_())
    b = (mu.clone().requires_grad_(), lv.clone().requires_grad_())
    out_c, out_e = compiled(*a), f(*b)
    torch.testing.assert_close(out_c, out_e)
    out_c.backward()
    out_e.backward()
    torch.testing.assert_close(a[0].grad, b[0].grad)
    torch.testing.assert_close(a[1].grad, b[1].grad)


def test_noise_argument_and_its_gradient(device):
    mu, lv = _inputs((5, 4), device=device)
    nz = torch.randn(5, 4, dtype=torch.float64, device=device, requires_grad=True)
    z = V.reparameterize(mu, lv, noise=nz)
    torch.testing.assert_close(z, mu + torch.exp(0.5 * lv) * nz.detach())
    (g,) = torch.autograd.grad(z.sum(), nz)
    torch.testing.assert_close(g, torch.exp(0.5 * lv))
    # noise in another floating dtype is cast to mu's dtype
    z32 = V.reparameterize(mu.float(), lv.float(), noise=nz.detach())
    torch.testing.assert_close(z32, (mu + torch.exp(0.5 * lv) * nz.detach()).float())


def test_batch_position_and_thread_invariance():
    mu, lv = _inputs((64, 3, 37), torch.float32)
    z, kl = V.reparameterize_kl(mu, lv, seed=21, stream=5)
    z1, kl1 = V.reparameterize_kl(mu[17:18], lv[17:18], seed=21, stream=5, sample_offset=17)
    assert torch.equal(z[17:18], z1)
    assert torch.equal(kl[17:18], kl1)  # the per-sample sum does not depend on the batch either
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        big_mu, big_lv = _inputs((300, 257), torch.float32)
        r1 = V.reparameterize_kl(big_mu, big_lv, seed=1)
        g1 = torch.ops.gencore.vae_backward(big_mu, big_lv, None, big_mu, big_lv[:, 0].contiguous(), 1, 0, 0)
        torch.set_num_threads(2)
        r2 = V.reparameterize_kl(big_mu, big_lv, seed=1)
        g2 = torch.ops.gencore.vae_backward(big_mu, big_lv, None, big_mu, big_lv[:, 0].contiguous(), 1, 0, 0)
    finally:
        torch.set_num_threads(old)
    for a, b in zip(r1 + g1, r2 + g2):
        assert torch.equal(a, b)


def test_non_contiguous_inputs(device):
    mu, lv = _inputs((6, 10), device=device)
    nz = torch.randn(6, 10, dtype=torch.float64, device=device)
    mu_t = mu.t().contiguous().t()  # same values, column-major
    lv_s = torch.zeros(6, 20, dtype=torch.float64, device=device)[:, ::2]
    lv_s.copy_(lv)
    nz_t = nz.t().contiguous().t()
    assert not mu_t.is_contiguous() and not lv_s.is_contiguous() and not nz_t.is_contiguous()
    for kw, kw_t in (({"seed": 3}, {"seed": 3}), ({"noise": nz}, {"noise": nz_t})):
        z, kl = V.reparameterize_kl(mu, lv, **kw)
        zt, klt = V.reparameterize_kl(mu_t, lv_s, **kw_t)
        assert torch.equal(z, zt) and torch.equal(kl, klt)
    m2, l2 = mu_t.clone().requires_grad_(), lv_s.clone().requires_grad_()
    m1, l1 = mu.clone().requires_grad_(), lv.clone().requires_grad_()
    for m, v in ((m1, l1), (m2, l2)):
        z, kl = V.reparameterize_kl(m, v, seed=3)
        (z.sum() + kl.sum()).backward()
    assert torch.equal(m1.grad, m2.grad) and torch.equal(l1.grad, l2.grad)


def test_empty_batch_and_empty_samples():
    mu = torch.zeros(0, 5, requires_grad=True)
    z, kl = V.reparameterize_kl(mu, torch.zeros(0, 5), seed=1)
    assert z.shape == (0, 5) and kl.shape == (0,)
    (z.sum() + kl.sum()).backward()
    assert mu.grad.shape == (0, 5)
    z, kl = V.reparameterize_kl(torch.zeros(3, 0), torch.zeros(3, 0), seed=1)
    assert z.shape == (3, 0) and torch.equal(kl, torch.zeros(3))
    assert V.gaussian_kl(torch.zeros(0, 2, 2), torch.zeros(0, 2, 2)).shape == (0,)


def test_reference_path_matches_native(monkeypatch):
    mu, lv = _inputs((7, 9), torch.float32)
    z, kl = V.reparameterize_kl(mu, lv, seed=99, stream=1, sample_offset=3)
    monkeypatch.setenv("GENCORE_FORCE_REFERENCE", "1")
    m = mu.clone().requires_grad_()
    zr, klr = V.reparameterize_kl(m, lv, seed=99, stream=1, sample_offset=3)
    torch.testing.assert_close(z, zr, rtol=2e-6, atol=2e-6)
    torch.testing.assert_close(kl, klr, rtol=2e-6, atol=2e-5)
    (zr.sum() + klr.sum()).backward()
    torch.testing.assert_close(m.grad, 1 + mu)


# ---- bad input --------------------------------------------------------------------------------


def test_bad_input():
    mu, lv = torch.zeros(3, 4), torch.zeros(3, 4)
    with pytest.raises(ValueError, match="logvar"):
        V.reparameterize(mu, torch.zeros(3, 5), seed=0)
    with pytest.raises(ValueError, match="logvar"):
        V.gaussian_kl(mu, torch.zeros(4, 3))
    with pytest.raises(ValueError, match="noise"):
        V.reparameterize(mu, lv, noise=torch.zeros(3, 3))
    with pytest.raises(ValueError, match="logvar"):
        V.reparameterize_kl(mu, torch.zeros(3, 4, device="meta"), seed=0)
    with pytest.raises(ValueError, match="noise"):
        V.reparameterize_kl(mu, lv, noise=torch.zeros(3, 4, device="meta"))
    with pytest.raises(TypeError, match="mu"):
        V.reparameterize(torch.zeros(3, 4, dtype=torch.int64), lv, seed=0)
    with pytest.raises(TypeError, match="logvar"):
        V.gaussian_kl(mu, torch.zeros(3, 4, dtype=torch.complex64))
    with pytest.raises(TypeError, match="noise"):
        V.reparameterize(mu, lv, noise=torch.zeros(3, 4, dtype=torch.int32))
    with pytest.raises(TypeError, match="logvar"):
        V.reparameterize(mu, lv.double(), seed=0)
    with pytest.raises(TypeError, match="mu"):
        V.gaussian_kl([[0.0]], lv)
    with pytest.raises(ValueError, match="mu"):
        V.gaussian_kl(torch.tensor(0.0), torch.tensor(0.0))
    with pytest.raises(ValueError, match="seed"):
        V.reparameterize(mu, lv)  # neither seed nor noise
    with pytest.raises(ValueError, match="seed"):
        V.reparameterize(mu, lv, seed=0, noise=torch.zeros(3, 4))  # both
    with pytest.raises(TypeError, match="seed"):
        V.reparameterize(mu, lv, seed=1.0)
    with pytest.raises(ValueError, match="seed"):
        V.reparameterize_kl(mu, lv, seed=-1)
    with pytest.raises(ValueError, match="seed"):
        V.reparameterize_kl(mu, lv, seed=2**64)
    with pytest.raises(ValueError, match="stream"):
        V.reparameterize(mu, lv, seed=0, stream=-1)
    with pytest.raises(ValueError, match="sample_offset"):
        V.reparameterize_kl(mu, lv, seed=0, sample_offset=-1)
    with pytest.raises(ValueError, match="sample_offset"):
        V.reparameterize_kl(mu, lv, seed=0, sample_offset=2**64 - 2)


@pytest.mark.parametrize("use_seed", [True, False])
def test_eager_path_equals_the_registered_ops(use_seed, device):
    """Outside torch.compile the public functions call the kernels through an autograd.Function;
    values and gradients equal those of the registered custom ops, output by output."""
    mu0, lv0 = _inputs((6, 9), torch.float32, device)
    nz = torch.randn(6, 9, device=device)
    kw = {"seed": 11, "stream": 2, "sample_offset": 3} if use_seed else {"noise": nz}
    op_args = (None, 11, 2, 3) if use_seed else (nz, 0, 0, 0)
    gz, gk = torch.randn(6, 9, device=device), torch.randn(6, device=device)
    ops = torch.ops.gencore
    cases = [  # (public call, op call, upstream gradients; None: that output is not used)
        (lambda m, v: V.reparameterize_kl(m, v, **kw), lambda m, v: ops.vae_reparameterize_kl(m, v, *op_args),
         (gz, gk)),
        (lambda m, v: V.reparameterize_kl(m, v, **kw), lambda m, v: ops.vae_reparameterize_kl(m, v, *op_args),
         (gz, None)),
        (lambda m, v: V.reparameterize_kl(m, v, **kw), lambda m, v: ops.vae_reparameterize_kl(m, v, *op_args),
         (None, gk)),
        (lambda m, v: (V.reparameterize(m, v, **kw),), lambda m, v: (ops.vae_reparameterize(m, v, *op_args),),
         (gz,)),
        (lambda m, v: (V.gaussian_kl(m, v),), lambda m, v: (ops.vae_gaussian_kl(m, v),), (gk,)),
    ]
    for public, op, grads in cases:
        results = []
        for f in (public, op):
            mu, lv = mu0.clone().requires_grad_(), lv0.clone().requires_grad_()
            outs = f(mu, lv)
            used = [(o, g) for o, g in zip(outs, grads) if g is not None]
            dmu, dlv = torch.autograd.grad([o for o, _ in used], (mu, lv), [g for _, g in used])
            results.append((outs, dmu, dlv, type(outs[0].grad_fn).__name__))
        (outs_p, dmu_p, dlv_p, fn_p), (outs_o, dmu_o, dlv_o, fn_o) = results
        assert fn_p == "_DirectBackward" and fn_o != fn_p  # the two paths really differ
        for a, b in zip(outs_p, outs_o):
            assert torch.equal(a, b)
        assert torch.equal(dmu_p, dmu_o) and torch.equal(dlv_p, dlv_o)


def test_double_backward_in_eager_mode():
    """create_graph=True: the backward runs the reference formulas, so second derivatives are
    right (gradgradcheck in float64), with the seed and with explicit noise."""
    mu, lv = _inputs((3, 4), scale=0.5)
    mu.requires_grad_()
    lv.requires_grad_()
    nz = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda m, v: V.reparameterize_kl(m, v, seed=9, stream=1), (mu, lv))
    assert torch.autograd.gradgradcheck(lambda m, v, e: V.reparameterize_kl(m, v, noise=e), (mu, lv, nz))
    assert torch.autograd.gradgradcheck(lambda m, v: V.gaussian_kl(m, v), (mu, lv))
    # and the first derivatives taken with create_graph equal the kernel's
    z = V.reparameterize(mu, lv, seed=9, stream=1)
    g1 = torch.autograd.grad(z.sum(), lv, create_graph=True)[0]
    g2 = torch.autograd.grad(V.reparameterize(mu, lv, seed=9, stream=1).sum(), lv)[0]
    torch.testing.assert_close(g1, g2, rtol=1e-14, atol=1e-14)


def test_float32_exp_within_one_ulp():
    """std = exp(logvar / 2) comes from the kernels' own float32 exp (common/fastmath.h): with
    mu = 0 and noise = 1, z is that exp exactly. Checked against float64 exp on 2**22 random
    float32 inputs plus the edges of the range: at most 1 ulp, inf on overflow, zero on
    underflow, NaN through."""
    g = torch.Generator().manual_seed(3)
    x = torch.empty(2**22).uniform_(-110.0, 95.0, generator=g)
    edges = torch.tensor([0.0, -0.0, 1e-30, -1e-30, 88.72283, 88.72284, 89.0, 89.5, -87.33654, -87.34,
                          -103.27893, -103.97, -104.0, -104.5, -150.0, 1e30, -1e30])
    x = torch.cat([x, edges])
    mu = torch.zeros(1, x.numel())
    z = V.reparameterize(mu, 2.0 * x[None], noise=torch.ones_like(mu))[0]
    ref = torch.exp(x.double())
    ref32 = ref.float()
    finite = torch.isfinite(ref32) & (ref32 != 0)
    _, expo = torch.frexp(ref32[finite])
    ulp = torch.ldexp(torch.ones_like(ref[finite]), (expo - 24).clamp(min=-149).double())
    err = ((z[finite].double() - ref[finite]).abs() / ulp).max().item()
    assert err <= 1.0, err
    assert torch.isinf(z[torch.isinf(ref32)]).all()
    assert (z[ref32 == 0] <= 2.0**-149).all()
    special = V.reparameterize(torch.zeros(1, 3), torch.tensor([[float("nan"), float("inf"), -float("inf")]]),
                               noise=torch.ones(1, 3))[0]
    assert torch.isnan(special[0]) and special[1] == float("inf") and special[2] == 0.0


# ---- accuracy of the per-sample sums ----------------------------------------------------------


def test_kl_sum_accurate_for_long_rows():
    """float32 per-sample KL over 2**24 elements: relative error within 10x of torch's pairwise
    sum in float32 (plus one float32 ulp), both against a float64 sum."""
    g = torch.Generator().manual_seed(11)
    mu = torch.randn(1, 2**24, generator=g) * 0.5
    lv = torch.randn(1, 2**24, generator=g) * 0.5
    m, v = mu.double(), lv.double()
    ref = (0.5 * (m * m + v.exp() - 1 - v)).sum().item()
    eager = (0.5 * (mu * mu + lv.exp() - 1 - lv)).sum().item()
    kl = V.gaussian_kl(mu, lv).item()
    err, err_torch = abs(kl - ref) / ref, abs(eager - ref) / ref
    assert err <= 10 * err_torch + torch.finfo(torch.float32).eps, (err, err_torch)


def test_long_rows_independent_of_batch_position_and_threads():
    """Rows of 70001 elements (many sum blocks, split across noise tiles at different offsets)."""
    if not _native.use_native(torch.zeros(1)):
        pytest.skip("a property of the native kernels (torch's own sum depends on the batch)")
    mu, lv = _inputs((5, 70001), torch.float32)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        z1, kl1 = V.reparameterize_kl(mu, lv, seed=3)
        torch.set_num_threads(2)
        z2, kl2 = V.reparameterize_kl(mu, lv, seed=3)
    finally:
        torch.set_num_threads(old)
    assert torch.equal(z1, z2) and torch.equal(kl1, kl2)
    for i in range(5):
        assert torch.equal(V.gaussian_kl(mu[i:i + 1], lv[i:i + 1]), kl1[i:i + 1])
