"""k-diffusion-style loops against k-diffusion's own samplers (loaded from its file), on the
exact mixture denoiser, with the same global-RNG noise."""

from __future__ import annotations

import inspect

import pytest
import torch

from _oracles import k_sampling
from gencore.diffusion import GaussianMixture
from gencore.diffusion import k_sampling as ours
from gencore.metrics import sliced_wasserstein

pytestmark = pytest.mark.usefixtures("one_thread")

D = 3


def _mixture():
    g = torch.Generator().manual_seed(1)
    return GaussianMixture(torch.randn(3, D, generator=g, dtype=torch.float64) * 2,
                           torch.rand(3, D, generator=g, dtype=torch.float64) + 0.3, torch.tensor([0.3, 0.3, 0.4]))


GM = _mixture()

CASES = [
    ("sample_euler", {}),
    ("sample_euler", {"s_churn": 1.0}),
    ("sample_euler", {"s_churn": 2.0, "s_tmin": 0.5, "s_tmax": 5.0, "s_noise": 1.01}),
    ("sample_euler_ancestral", {}),
    ("sample_euler_ancestral", {"eta": 0.5, "s_noise": 0.9}),
    ("sample_euler_ancestral", {"eta": 0.0}),
    ("sample_heun", {}),
    ("sample_heun", {"s_churn": 1.5}),
    ("sample_dpmpp_2m", {}),
]


def _run(fn, sigmas, x, kwargs, seed=5):
    torch.manual_seed(seed)
    return fn(GM.sigma_denoiser(), x, sigmas, disable=True, **kwargs)


@pytest.mark.parametrize("n", [8, 15])
@pytest.mark.parametrize("name, kwargs", CASES)
def test_matches_k_diffusion(name, kwargs, n):
    ks = k_sampling()
    sig64 = ks.get_sigmas_karras(n, 0.03, 80.0).double()
    x64 = torch.randn(32, D, dtype=torch.float64, generator=torch.Generator().manual_seed(n)) * 80.0
    a64 = _run(getattr(ks, name), sig64, x64, kwargs)
    b64 = _run(getattr(ours, name), sig64, x64, kwargs)
    assert (a64 - b64).abs().max().item() <= 1e-10
    sig32, x32 = sig64.float(), x64.float()
    a32 = _run(getattr(ks, name), sig32, x32, kwargs)
    b32 = _run(getattr(ours, name), sig32, x32, kwargs)
    err = (a32.double() - b32.double()).abs().max().item()
    if err > 1e-5:
        # k-diffusion's float32 churn noise amplitude sqrt(sigma_hat^2 - sigma^2) cancels at sigma ~ 80;
        # gencore computes it in float64: it must then be at least as close to the float64 run.
        e_ours = (b32.double() - b64).abs().max().item()
        e_theirs = (a32.double() - a64).abs().max().item()
        assert e_ours <= 2 * e_theirs + 1e-6, f"{err:.3g}: vs float64 {e_ours:.3g} / {e_theirs:.3g}"


@pytest.mark.parametrize("name", ["sample_euler", "sample_euler_ancestral", "sample_heun", "sample_dpmpp_2m"])
def test_signature_and_callback_match_k_diffusion(name):
    ks = k_sampling()
    theirs = list(inspect.signature(getattr(ks, name)).parameters)
    mine = list(inspect.signature(getattr(ours, name)).parameters)
    assert mine[: len(theirs)] == theirs
    sig = ks.get_sigmas_karras(4, 0.1, 10.0)
    x = torch.randn(2, D) * 10
    got, want = [], []
    _run(getattr(ks, name), sig, x, {"callback": lambda d: want.append(d)})
    _run(getattr(ours, name), sig, x, {"callback": lambda d: got.append(d)})
    assert len(got) == len(want) == 4
    for g, w in zip(got, want):
        assert set(g) == set(w)
        assert g["i"] == w["i"]
        torch.testing.assert_close(g["denoised"], w["denoised"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kwargs", [{}, {"eta": 0.5, "s_noise": 0.9}, {"solver_type": "heun"}, {"eta": 0.0}])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_dpmpp_2m_sde_matches_k_diffusion(kwargs, dtype):
    """Both loops take their noise from the same sampler (k-diffusion's default is a torchsde
    Brownian tree)."""
    ks = k_sampling()
    sig = ks.get_sigmas_karras(12, 0.03, 80.0).to(dtype)
    x = (torch.randn(32, D, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * 80.0).to(dtype)
    noise = torch.randn(len(sig), 32, D, dtype=torch.float64, generator=torch.Generator().manual_seed(3)).to(dtype)

    def noise_sampler(sigma, sigma_next):
        return noise[(sig == sigma).nonzero().item()]

    a = ks.sample_dpmpp_2m_sde(GM.sigma_denoiser(), x, sig, disable=True, noise_sampler=noise_sampler, **kwargs)
    b = ours.sample_dpmpp_2m_sde(GM.sigma_denoiser(), x, sig, disable=True, noise_sampler=noise_sampler, **kwargs)
    torch.testing.assert_close(b, a, rtol=1e-10 if dtype == torch.float64 else 2e-5,
                               atol=1e-10 if dtype == torch.float64 else 2e-4)


def test_dpmpp_2m_sde_eta_zero_is_dpmpp_2m():
    sig = ours.get_sigmas_karras(10, 0.05, 20.0).double()
    x = torch.randn(6, D, dtype=torch.float64) * 20
    a = ours.sample_dpmpp_2m_sde(GM.sigma_denoiser(), x, sig, disable=True, eta=0.0)
    b = ours.sample_dpmpp_2m(GM.sigma_denoiser(), x, sig, disable=True)
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_get_sigmas_karras_matches():
    ks = k_sampling()
    for n, lo, hi in [(5, 0.1, 10.0), (30, 0.0292, 14.6)]:
        a, b = ks.get_sigmas_karras(n, lo, hi), ours.get_sigmas_karras(n, lo, hi)
        assert a.dtype == b.dtype and a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-6, atol=0)


@pytest.mark.parametrize("name", ["sample_euler", "sample_euler_ancestral", "sample_heun", "sample_dpmpp_2m_sde"])
def test_counter_based_noise_is_batch_invariant(name):
    sig = ours.get_sigmas_karras(6, 0.05, 20.0).double()
    x = torch.randn(10, D, dtype=torch.float64) * 20
    kw = {"s_churn": 1.0} if name in ("sample_euler", "sample_heun") else {}
    fn = getattr(ours, name)
    full = fn(GM.sigma_denoiser(), x, sig, disable=True, seed=3, **kw)
    part = fn(GM.sigma_denoiser(), x[4:7], sig, disable=True, seed=3, sample_offset=4, **kw)
    torch.testing.assert_close(part, full[4:7], rtol=1e-12, atol=1e-12)


def test_flow_match_loop_samples_the_mixture():
    gm = GaussianMixture(torch.tensor([[-2.0, 0.0], [2.0, 1.0]]), torch.tensor([0.5, 0.4]), torch.tensor([0.4, 0.6]))
    n = 3000
    sig = torch.linspace(1.0, 0.0, 41, dtype=torch.float64)
    x = ours.sample_flow_match_euler(gm.velocity_field(), torch.randn(n, 2, dtype=torch.float64,
                                                                     generator=torch.Generator().manual_seed(0)),
                                     sig, disable=True)
    ref, ref2 = gm.sample(n, seed=1, dtype=torch.float64), gm.sample(n, seed=2, dtype=torch.float64)
    assert sliced_wasserstein(x, ref, p=1) < 2 * sliced_wasserstein(ref, ref2, p=1)


def test_integration_module_reexports():
    from gencore.integrations import k_diffusion as kd

    assert kd.sample_dpmpp_2m is ours.sample_dpmpp_2m
    torch.testing.assert_close(kd.append_zero(torch.ones(2)), torch.tensor([1.0, 1.0, 0.0]))
