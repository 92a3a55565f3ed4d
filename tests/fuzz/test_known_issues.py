"""What the fuzz tests found: regression tests for the fixed bugs, and strict xfails (with the
smallest repro) for the open ones, which the fuzz oracle counts as ``known`` or ``ref_wrong``."""

from __future__ import annotations

import math

import pytest
import torch

import gencore.flows as gf
import gencore.vae as gv
from gencore import _native
from gencore.diffusion import (
    Coef,
    affine_step,
    ddim_step,
    dpmpp_2m_step,
    euler_ancestral_step,
    heun_step,
    make_schedule,
    q_sample,
)

native = pytest.mark.skipif(_native.lib() is None or _native.force_reference(), reason="needs the native kernels")


def _both(fn, monkeypatch):
    """fn() on the native kernels and on the reference path."""
    nat = fn()
    with monkeypatch.context() as mp:
        mp.setenv("GENCORE_FORCE_REFERENCE", "1")
        ref = fn()
    return nat, ref


# ---------------------------------------------------------------- fixed


@pytest.mark.parametrize("noise_dtype", [torch.float16, torch.float32])
def test_q_sample_rejects_noise_of_another_dtype(noise_dtype):
    """Issue 15 item 1: float16 noise with float64 x0 was read as float64 (garbage, and a heap
    overflow under AddressSanitizer)."""
    x0 = torch.ones(2, 64, dtype=torch.float64)
    noise = torch.ones(2, 64, dtype=noise_dtype)
    with pytest.raises(TypeError, match="noise must have the dtype of x0"):
        q_sample(x0, torch.tensor([10, 500]), make_schedule("linear"), noise=noise)


def test_step_rejects_overlapping_out_buffers():
    """out[0] and out[1] views of one buffer one element apart: the kernel interleaves its writes,
    the reference writes one after the other, and both gave wrong values."""
    x, m = torch.randn(2, 8), torch.randn(2, 8)
    buf = torch.empty(17)
    out = (buf[:16].view(2, 8), buf[1:].view(2, 8))
    with pytest.raises(ValueError, match=r"out\[0\] and out\[1\] share memory"):
        ddim_step(x, m, 0.5, 0.6, out=out)


def test_step_rejects_the_same_out_buffer_twice():
    x, m = torch.randn(2, 8), torch.randn(2, 8)
    o = torch.empty(2, 8)
    with pytest.raises(ValueError, match=r"out\[0\] and out\[1\] share memory"):
        ddim_step(x, m, 0.5, 0.6, out=(o, o))


def test_step_accepts_fresh_empty_out_buffers():
    """Empty tensors all have data pointer 0: fresh empty outputs were refused as 'not distinct'."""
    x, m = torch.empty(0, 3), torch.empty(0, 3)
    out = (torch.empty(0, 3), torch.empty(0, 3), torch.empty(0, 3))
    res = heun_step(x, m, 2.0, 1.0, out=out)
    assert all(r is o for r, o in zip(res, out))


@native
@pytest.mark.parametrize("per_sample", [False, True])
def test_affine_step_coefficients_of_absent_inputs(per_sample, monkeypatch):
    """pz = inf without noise (and q1 = inf without history): the kernel multiplied them by the
    z = 0 / h1 = 0 it reads, giving NaN; the reference leaves absent terms out."""
    x, m = torch.ones(2, 3, dtype=torch.float16), torch.zeros(2, 3, dtype=torch.float16)
    inf = torch.full((2,), math.inf, dtype=torch.float64) if per_sample else math.inf
    coef = Coef(px=1.0, pz=inf, kpre=inf, q1=inf)
    nat, ref = _both(lambda: affine_step(coef, x, m, want_aux=True), monkeypatch)
    for a, b in zip(nat, ref):
        assert torch.equal(a, b)
    assert torch.equal(nat[0], x)


# ---------------------------------------------------------------- open


@native
@pytest.mark.xfail(strict=True, reason="issue 15 item 4 (open): gaussian_kl's native backward gives NaN for "
                                       "d kl / d logvar at logvar = +inf (reference: inf)")
def test_gaussian_kl_grad_at_infinite_logvar(monkeypatch):
    def grad():
        mu = torch.zeros(1, 1, requires_grad=True)
        lv = torch.full((1, 1), math.inf, requires_grad=True)
        gv.gaussian_kl(mu, lv).sum().backward()
        return lv.grad

    nat, ref = _both(grad, monkeypatch)
    assert torch.equal(nat, ref)


@native
@pytest.mark.xfail(strict=True, reason="issue 15 item 3 (open): reparameterize's native backward gives NaN "
                                       "for d z / d logvar once exp(logvar) overflows float32 (logvar = 100; "
                                       "exp(logvar / 2) and the gradient 2.6e21 are finite)")
def test_reparameterize_grad_logvar_overflowing_exp(monkeypatch):
    def grad():
        mu = torch.zeros(1, 1, requires_grad=True)
        lv = torch.full((1, 1), 100.0, requires_grad=True)
        gv.reparameterize(mu, lv, noise=torch.ones(1, 1)).sum().backward()
        return lv.grad

    nat, ref = _both(grad, monkeypatch)
    assert torch.isfinite(nat).all() and torch.allclose(nat, ref)


@native
@pytest.mark.xfail(strict=True, reason="issue 15 item 3 (open): reparameterize's native backward gives NaN "
                                       "for d z / d mu at mu = inf (reference: 1)")
def test_reparameterize_grad_mu_at_infinite_mu(monkeypatch):
    def grad():
        mu = torch.full((1, 1), math.inf, requires_grad=True)
        lv = torch.zeros(1, 1, requires_grad=True)
        gv.reparameterize(mu, lv, noise=torch.ones(1, 1)).sum().backward()
        return mu.grad

    nat, ref = _both(grad, monkeypatch)
    assert torch.equal(nat, ref)


@native
@pytest.mark.xfail(strict=True, reason="issue 15 item 9 family (open, reference path): the float16 reference "
                                       "of affine_coupling computes exp(-s) in float16, which underflows to 0 "
                                       "at s = 20, so (x - t) * exp(-s) is -inf * 0 = NaN; the kernels (float32) "
                                       "give -inf")
def test_affine_coupling_float16_reference_inverse_underflow(monkeypatch):
    x = torch.tensor([[-math.inf]], dtype=torch.float16)
    t, v = torch.zeros(1, 1, dtype=torch.float16), torch.full((1, 1), 20.0, dtype=torch.float16)
    nat, ref = _both(lambda: gf.affine_coupling(x, t, v, inverse=True)[0], monkeypatch)
    assert torch.equal(nat, ref)


@pytest.mark.parametrize("sigma_next", [0.0, 1e-170])
def test_euler_ancestral_tiny_sigma(sigma_next, monkeypatch):
    """sigma = 4.6e-163: sigma^2 underflows to 0 and the host coefficients raised
    ZeroDivisionError; now both paths give the deterministic step's values."""
    x, m = torch.randn(2, 3, dtype=torch.float64), torch.randn(2, 3, dtype=torch.float64)
    step = lambda: euler_ancestral_step(x, m, 4.6e-163, sigma_next, seed=0)
    nat, ref = _both(step, monkeypatch)
    for a, b in zip(nat, ref):
        assert torch.equal(a, b) and torch.isfinite(a).all()


def test_dpmpp_2m_step_to_more_noise_from_a_subnormal_sigma(monkeypatch):
    """sigma = 2.2e-311 to sigma_next = 1: h = -715 and the host's math.expm1(715) raised
    OverflowError; the coefficient is inf on both paths, as torch.expm1 gives."""
    x, m = torch.randn(2, 3, dtype=torch.float64), torch.randn(2, 3, dtype=torch.float64)
    nat, ref = _both(lambda: dpmpp_2m_step(x, m, 2.225073858507e-311, 1.0), monkeypatch)
    for a, b in zip(nat, ref):
        assert torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(), b.nan_to_num())
