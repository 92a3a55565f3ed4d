from __future__ import annotations

import importlib.util
import sys
import types

import numpy as np
import pytest
import torch

from gencore.diffusion import Schedule, interp_sigmas, karras_sigmas, make_schedule, timesteps
from gencore.diffusion.schedules import (
    _arange,
    _linspace,
    convert_to_karras,
    flow_match_sigmas,
    flow_shift,
    flow_time_shift,
    multistep_timesteps,
    sigma_to_t,
    stretch_to_terminal,
)

diffusers = pytest.importorskip("diffusers")

SCHEDS = [("linear", 1e-4, 0.02), ("scaled_linear", 0.00085, 0.012), ("squaredcos_cap_v2", 1e-4, 0.02),
          ("sigmoid", 1e-4, 0.02)]


def load_k_sampling():
    """k_diffusion.sampling without k_diffusion/__init__ (which imports torchvision)."""
    if "_kd.sampling" in sys.modules:
        return sys.modules["_kd.sampling"]
    spec = importlib.util.find_spec("k_diffusion")
    if spec is None:
        pytest.skip("k-diffusion not installed")
    path = spec.submodule_search_locations[0]
    pkg = types.ModuleType("_kd")
    pkg.__path__ = [path]
    utils = types.ModuleType("_kd.utils")
    utils.append_dims = lambda x, n: x[(...,) + (None,) * (n - x.ndim)]
    sys.modules["_kd"], sys.modules["_kd.utils"] = pkg, utils
    mspec = importlib.util.spec_from_file_location("_kd.sampling", f"{path}/sampling.py")
    mod = importlib.util.module_from_spec(mspec)
    sys.modules["_kd.sampling"] = mod
    mspec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("name,b0,b1", SCHEDS)
@pytest.mark.parametrize("rescale", [False, True])
def test_schedules_match_diffusers(name, b0, b1, rescale):
    ref = diffusers.DDPMScheduler(beta_schedule=name, beta_start=b0, beta_end=b1, rescale_betas_zero_snr=rescale)
    # float32 build: bit-identical to what diffusers stores
    s32 = make_schedule(name, 1000, b0, b1, rescale_zero_snr=rescale, compute_dtype=torch.float32)
    assert torch.equal(s32.betas, ref.betas.double())
    assert torch.equal(s32.alphas_cumprod, ref.alphas_cumprod.double())
    # float64 build: the same formula to double precision (diffusers' float32 cumprod drifts ~1e-6)
    s = make_schedule(name, 1000, b0, b1, rescale_zero_snr=rescale)
    assert s.betas.dtype == s.alphas_cumprod.dtype == s.sigmas.dtype == torch.float64
    if rescale:  # diffusers' float32 rescale is noisy (1e-3 relative): use its own function in float64
        from diffusers.schedulers.scheduling_ddpm import rescale_zero_terminal_snr

        plain = make_schedule(name, 1000, b0, b1)
        assert torch.allclose(s.betas, rescale_zero_terminal_snr(plain.betas), rtol=1e-12, atol=1e-15)
        assert torch.allclose(s.betas, ref.betas.double(), rtol=1e-2, atol=1e-6)
    else:
        assert torch.allclose(s.betas, ref.betas.double(), rtol=1e-6, atol=1e-7)
    assert torch.allclose(s.alphas_cumprod, ref.alphas_cumprod.double(), rtol=0, atol=2e-6)
    # float64 product is accurate: compare with a float64 recomputation in log space
    logs = torch.cumsum(torch.log1p(-s.betas[:-1] if rescale else -s.betas), 0)
    assert torch.allclose(s.alphas_cumprod[: logs.numel()], logs.exp(), rtol=1e-12, atol=0)
    if rescale:
        assert s.alphas_cumprod[-1] == 0.0 and torch.isinf(s.sigmas[-1])
    sig = ((1 - s.alphas_cumprod) / s.alphas_cumprod).sqrt()
    assert torch.equal(s.sigmas, sig)


def test_cosine_alias_and_lookups():
    a = make_schedule("cosine", 500)
    b = make_schedule("squaredcos_cap_v2", 500)
    assert a.name == "squaredcos_cap_v2" and torch.equal(a.betas, b.betas)
    assert a.alpha_prod(-1) == 1.0 and a.alpha_prod(10) == float(a.alphas_cumprod[10])
    assert a.sigma(3) == float(a.sigmas[3])
    with pytest.raises(ValueError, match="t must"):
        a.sigma(500)


def test_bad_schedule_arguments():
    with pytest.raises(ValueError, match="name"):
        make_schedule("quadratic")
    with pytest.raises(ValueError, match="num_train_timesteps"):
        make_schedule("linear", 1)
    with pytest.raises(TypeError, match="num_train_timesteps"):
        make_schedule("linear", 10.5)
    with pytest.raises(ValueError, match="beta_end"):
        make_schedule("linear", beta_end=1.5)
    with pytest.raises(TypeError, match="compute_dtype"):
        make_schedule("linear", compute_dtype=torch.float16)


@pytest.mark.parametrize("n,smin,smax,rho", [(10, 0.0292, 14.6146, 7.0), (1, 0.1, 10.0, 7.0), (25, 0.002, 80.0, 3.0)])
def test_karras_sigmas_match_k_diffusion(n, smin, smax, rho):
    ks = load_k_sampling()
    ours = karras_sigmas(n, smin, smax, rho)
    theirs = ks.get_sigmas_karras(n, smin, smax, rho)  # float32 ramp
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        theirs64 = ks.get_sigmas_karras(n, smin, smax, rho)
    finally:
        torch.set_default_dtype(old)
    assert ours.dtype == torch.float64 and ours.shape == (n + 1,) and ours[-1] == 0
    assert torch.allclose(ours, theirs64, rtol=1e-14, atol=0)
    assert torch.allclose(ours, theirs.double(), rtol=1e-5, atol=0)
    assert ours[0] == pytest.approx(smax, rel=1e-14)
    if n > 1:
        assert ours[-2] == pytest.approx(smin, rel=1e-14)
        assert bool((ours[:-1] > ours[1:]).all())
    with pytest.raises(ValueError, match="sigma_min"):
        karras_sigmas(n, smax + 1, smax)
    with pytest.raises(ValueError, match="n must"):
        karras_sigmas(0, smin, smax)


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
@pytest.mark.parametrize("steps", [1, 3, 7, 10, 50, 333, 1000])
def test_integer_timesteps_match_ddim(spacing, steps):
    off = 1 if spacing == "leading" else 0
    sch = diffusers.DDIMScheduler(timestep_spacing=spacing, steps_offset=off)
    sch.set_timesteps(steps)
    ours = timesteps(1000, steps, spacing, steps_offset=off)
    assert ours.dtype == torch.int64
    assert torch.equal(ours, sch.timesteps)
    ddpm = diffusers.DDPMScheduler(timestep_spacing=spacing, steps_offset=off)
    ddpm.set_timesteps(steps)
    assert torch.equal(ours, ddpm.timesteps)


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
@pytest.mark.parametrize("steps", [4, 25, 50])
def test_float_timesteps_and_sigmas_match_euler(spacing, steps):
    sch = diffusers.EulerDiscreteScheduler(timestep_spacing=spacing, steps_offset=1 if spacing == "leading" else 0)
    sch.set_timesteps(steps)
    s = make_schedule("linear", compute_dtype=torch.float32)
    ts = timesteps(s, steps, spacing, steps_offset=1 if spacing == "leading" else 0, integer=False)
    assert ts.dtype == torch.float64
    assert torch.allclose(ts, sch.timesteps.double(), rtol=0, atol=1e-3)
    sig = interp_sigmas(s, ts)
    assert torch.allclose(sig, sch.sigmas[:-1].double(), rtol=1e-6, atol=0)


def test_bad_timestep_arguments():
    with pytest.raises(ValueError, match="steps"):
        timesteps(1000, 0)
    with pytest.raises(ValueError, match="steps"):
        timesteps(1000, 1001)
    with pytest.raises(ValueError, match="spacing"):
        timesteps(1000, 10, "uniform")
    with pytest.raises(TypeError, match="schedule"):
        timesteps("linear", 10)
    with pytest.raises(ValueError, match="steps_offset"):
        timesteps(1000, 10, "leading", steps_offset=-1)


def test_from_betas_roundtrip():
    s = make_schedule("scaled_linear", 100, 0.00085, 0.012)
    c = type(s).from_betas(s.betas)
    assert torch.equal(c.alphas_cumprod, s.alphas_cumprod) and c.name == "custom"
    with pytest.raises(ValueError, match="betas"):
        type(s).from_betas([0.5, 1.5])
    np.testing.assert_allclose(s.on("cpu")["sqrt_alphas_cumprod"].numpy(), s.alphas_cumprod.sqrt().numpy())


@pytest.mark.parametrize("name,b0,b1", SCHEDS[:3])
def test_terminal_alpha_cumprod_matches_diffusers_sigma_schedulers(name, b0, b1):
    """diffusers' Euler/DPM-Solver set abar_{T-1} = 2**-24 after a zero-SNR rescale."""
    ref = diffusers.EulerDiscreteScheduler(beta_schedule=name, beta_start=b0, beta_end=b1, rescale_betas_zero_snr=True)
    s = make_schedule(name, 1000, b0, b1, rescale_zero_snr=True, terminal_alpha_cumprod=2**-24,
                      compute_dtype=torch.float32)
    assert torch.equal(s.alphas_cumprod, ref.alphas_cumprod.double())
    assert torch.equal(s.sigmas.flip(0), ref.sigmas[:-1].double())
    b = Schedule.from_betas(ref.betas, rescale_zero_snr=False, terminal_alpha_cumprod=2**-24,
                            compute_dtype=torch.float32)
    assert b.alphas_cumprod[-1] == 2**-24 and torch.isfinite(b.sigmas).all()
    with pytest.raises(ValueError, match="terminal_alpha_cumprod"):
        make_schedule(name, terminal_alpha_cumprod=0.0)


def test_from_betas_rescale_matches_make_schedule():
    s = make_schedule("scaled_linear", 1000, 0.00085, 0.012, rescale_zero_snr=True)
    plain = make_schedule("scaled_linear", 1000, 0.00085, 0.012)
    c = Schedule.from_betas(plain.betas, rescale_zero_snr=True)
    assert torch.equal(c.betas, s.betas) and torch.equal(c.alphas_cumprod, s.alphas_cumprod)


def test_linspace_and_arange_follow_numpy():
    for start, stop, num in [(0, 999, 7), (0, 998, 51), (999.0, 1.0, 13), (5.0, 5.0, 4), (0, 1, 1)]:
        assert torch.equal(_linspace(start, stop, num), torch.from_numpy(np.linspace(start, stop, num)))
    for start, step in [(1000, -1000 / 7), (1000, -1000 / 333), (873, -1000 / 16), (10, -3)]:
        assert torch.equal(_arange(start, 0, step), torch.from_numpy(np.arange(start, 0, step).astype(np.float64)))


@pytest.mark.parametrize("name", ["linear", "scaled_linear", "squaredcos_cap_v2"])
@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
@pytest.mark.parametrize("clip", [-float("inf"), -5.1])
def test_multistep_timesteps_match_dpm_solver(name, spacing, clip):
    off = 1 if spacing == "leading" else 0
    ref = diffusers.DPMSolverMultistepScheduler(beta_schedule=name, timestep_spacing=spacing, steps_offset=off,
                                                lambda_min_clipped=clip)
    s = make_schedule(name, compute_dtype=torch.float32)
    for steps in [1, 2, 7, 10, 20, 25, 50, 333, 999]:
        ref.set_timesteps(steps)
        ours = multistep_timesteps(s, steps, spacing, off, lambda_min_clipped=clip)
        assert ours.dtype == torch.int64 and torch.equal(ours, ref.timesteps), (steps, ours, ref.timesteps)
    assert torch.equal(multistep_timesteps(1000, 10, spacing, off), multistep_timesteps(s, 10, spacing, off))
    with pytest.raises(TypeError, match="lambda_min_clipped"):
        multistep_timesteps(1000, 10, spacing, lambda_min_clipped=-5.1)


def test_interp_sigmas_is_numpy_interp():
    s = make_schedule("scaled_linear", 1000, 0.00085, 0.012, compute_dtype=torch.float32)
    g = np.random.default_rng(0)
    ts = np.concatenate([g.uniform(-5, 1005, 500), np.arange(0, 1000, 37.0), [0.0, 999.0, 998.5, -1.0, 1e4]])
    want = np.interp(ts, np.arange(1000), s.sigmas.numpy())
    got = interp_sigmas(s, torch.from_numpy(ts))
    assert got.dtype == torch.float64 and torch.equal(got, torch.from_numpy(want))
    assert torch.equal(interp_sigmas(s.sigmas, ts[:10]), got[:10])


@pytest.mark.parametrize("name", ["linear", "squaredcos_cap_v2"])
def test_sigma_to_t_matches_diffusers_formula_in_float64(name):
    s = make_schedule(name, compute_dtype=torch.float32)
    ref = diffusers.EulerDiscreteScheduler(beta_schedule=name)
    log_sigmas = np.log(s.sigmas.numpy())  # float64: diffusers' formula without its float32 log
    sig = np.concatenate([s.sigmas.numpy()[::97], np.geomspace(1e-3, 200.0, 50), [0.0]])
    want = np.array([ref._sigma_to_t(v, log_sigmas) for v in sig])
    got = sigma_to_t(torch.from_numpy(sig), s)
    assert got.dtype == torch.float64
    assert torch.allclose(got, torch.from_numpy(want), rtol=0, atol=1e-9)
    grid = torch.arange(0, 1000, 97, dtype=torch.float64)
    assert torch.allclose(sigma_to_t(s.sigmas[grid.long()], s), grid, rtol=0, atol=1e-9)
    # within diffusers' float32 rounding of its own log sigmas
    want32 = np.array([ref._sigma_to_t(v, np.log(s.sigmas.numpy().astype(np.float32))) for v in sig])
    assert np.abs(got.numpy() - want32).max() < 1e-3


@pytest.mark.parametrize("smin,smax", [(None, None), (0.05, None), (None, 20.0), (0.1, 10.0)])
def test_convert_to_karras_matches_diffusers(smin, smax):
    ref = diffusers.EulerDiscreteScheduler(sigma_min=smin, sigma_max=smax)
    grid = interp_sigmas(make_schedule("linear", compute_dtype=torch.float32), timesteps(1000, 30, "linspace",
                                                                                        integer=False))
    want = ref._convert_to_karras(in_sigmas=grid.numpy(), num_inference_steps=12)
    got = convert_to_karras(grid, 12, smin, smax)
    assert got.shape == (12,) and got.dtype == torch.float64
    assert torch.allclose(got, torch.from_numpy(np.asarray(want, dtype=np.float64)), rtol=1e-13, atol=0)


@pytest.mark.parametrize("shift", [1.0, 3.0])
@pytest.mark.parametrize("steps", [1, 4, 28, 50])
def test_flow_match_grids_match_diffusers(shift, steps):
    ref = diffusers.FlowMatchEulerDiscreteScheduler(shift=shift)
    train = flow_shift(flow_match_sigmas(1000, 1000), shift)
    assert torch.allclose(train, ref.sigmas.double(), rtol=1e-6, atol=0)
    ref.set_timesteps(steps)
    base = flow_match_sigmas(steps, 1000, sigma_max=ref.sigma_max, sigma_min=ref.sigma_min)
    assert torch.allclose(flow_shift(base, shift), ref.sigmas[:-1].double(), rtol=1e-6, atol=0)
    t = np.linspace(0.95, 0.05, 7)
    for kind in ("exponential", "linear"):
        dyn = diffusers.FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, time_shift_type=kind)
        want = dyn.time_shift(0.7, 1.0, t)
        assert torch.allclose(flow_time_shift(t, 0.7, 1.0, kind), torch.from_numpy(want), rtol=1e-14, atol=0)
    term = diffusers.FlowMatchEulerDiscreteScheduler(shift_terminal=0.2)
    want = term.stretch_shift_to_terminal(t)
    got = stretch_to_terminal(t, 0.2)
    assert torch.allclose(got, torch.from_numpy(want), rtol=1e-14, atol=0) and got[-1] == pytest.approx(0.2)
    with pytest.raises(ValueError, match="kind"):
        flow_time_shift(t, 0.7, 1.0, "cubic")
