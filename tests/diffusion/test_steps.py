"""Step functions against diffusers' schedulers ``.step`` (and k-diffusion) on identical inputs
and identical noise, for every prediction type, with and without guidance."""

from __future__ import annotations

import math

import pytest
import torch

import gencore
from gencore.diffusion import (
    ddim_step,
    ddpm_step,
    dpmpp_2m_lower_order,
    dpmpp_2m_step,
    euler_ancestral_step,
    euler_step,
    flow_match_euler_step,
    heun_step,
    make_schedule,
)

diffusers = pytest.importorskip("diffusers")

SHAPE = (3, 2, 3, 5)  # 30 elements per sample: not a multiple of 4
PREDS = ["epsilon", "v_prediction", "sample"]


def _close(ours: torch.Tensor, ref: torch.Tensor, dtype: torch.dtype, rel32: float = 3e-6) -> None:
    assert ours.shape == ref.shape
    scale = max(1.0, ref.double().abs().max().item())
    tol = (1e-12 if dtype == torch.float64 else rel32) * scale
    err = (ours.double() - ref.double()).abs().max().item()
    assert err <= tol, f"max abs error {err:.3g} > {tol:.3g}"


def _inputs(dtype, guided, scale=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = scale * torch.randn(SHAPE, generator=g, dtype=torch.float64)
    c = torch.randn(SHAPE, generator=g, dtype=torch.float64)
    u = torch.randn(SHAPE, generator=g, dtype=torch.float64) if guided else None
    z = torch.randn(SHAPE, generator=g, dtype=torch.float64)
    cast = (lambda t: None if t is None else t.to(dtype))
    return cast(x), cast(c), cast(u), cast(z)


def _guide(c, u, s):
    return c if u is None else u + s * (c - u)


def _kw(u, s):
    return {"uncond_output": u, "guidance_scale": s} if u is not None else {}


# ---------------------------------------------------------------- DDIM

@pytest.mark.parametrize("pred", PREDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("guided", [False, True])
@pytest.mark.parametrize("eta", [0.0, 0.7])
def test_ddim_matches_diffusers(pred, dtype, guided, eta):
    sch = diffusers.DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                                  prediction_type=pred, clip_sample=False, timestep_spacing="trailing")
    if dtype == torch.float64:
        s = make_schedule("scaled_linear", 1000, 0.00085, 0.012)
        sch.alphas_cumprod = s.alphas_cumprod
        sch.final_alpha_cumprod = torch.tensor(1.0, dtype=torch.float64)
    sch.set_timesteps(10)
    x, c, u, z = _inputs(dtype, guided)
    gs = 5.0
    for t in (int(sch.timesteps[0]), int(sch.timesteps[5]), int(sch.timesteps[-1])):
        prev_t = t - 1000 // 10
        a_t = float(sch.alphas_cumprod[t])
        a_p = float(sch.alphas_cumprod[prev_t]) if prev_t >= 0 else float(sch.final_alpha_cumprod)
        ref = sch.step(_guide(c, u, gs), t, x, eta=eta, variance_noise=z if eta > 0 else None)
        prev, x0 = ddim_step(x, c, a_t, a_p, eta=eta, noise=z if eta > 0 else None, prediction_type=pred,
                             **_kw(u, gs))
        assert prev.dtype == dtype and x0.dtype == dtype
        _close(prev, ref.prev_sample, dtype)
        _close(x0, ref.pred_original_sample, dtype)


@pytest.mark.parametrize("use_clipped", [False, True])
@pytest.mark.parametrize("pred", PREDS)
def test_ddim_clip_matches_diffusers(pred, use_clipped):
    sch = diffusers.DDIMScheduler(prediction_type=pred, clip_sample=True, clip_sample_range=0.8)
    s = make_schedule("linear")
    sch.alphas_cumprod = s.alphas_cumprod
    sch.final_alpha_cumprod = torch.tensor(1.0, dtype=torch.float64)
    sch.set_timesteps(20)
    x, c, _, z = _inputs(torch.float64, False)
    t = 500
    ref = sch.step(c, t, x, eta=1.0, variance_noise=z, use_clipped_model_output=use_clipped)
    prev, x0 = ddim_step(x, c, s.alpha_prod(t), s.alpha_prod(t - 50), eta=1.0, noise=z, prediction_type=pred,
                         clip_sample=0.8, use_clipped_model_output=use_clipped)
    assert float(x0.abs().max()) <= 0.8
    _close(prev, ref.prev_sample, torch.float64)
    _close(x0, ref.pred_original_sample, torch.float64)


# ---------------------------------------------------------------- DDPM

@pytest.mark.parametrize("pred", PREDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("variance_type", ["fixed_small", "fixed_large"])
@pytest.mark.parametrize("guided", [False, True])
def test_ddpm_matches_diffusers(pred, dtype, variance_type, guided):
    sch = diffusers.DDPMScheduler(prediction_type=pred, variance_type=variance_type, clip_sample=False,
                                  beta_schedule="squaredcos_cap_v2", timestep_spacing="trailing")
    if dtype == torch.float64:
        s = make_schedule("cosine")
        sch.alphas_cumprod = s.alphas_cumprod
        sch.one = torch.tensor(1.0, dtype=torch.float64)
    sch.set_timesteps(8)
    x, c, u, _ = _inputs(dtype, guided)
    gs = 3.0
    ts = sch.timesteps.tolist()
    for i in (0, 3, len(ts) - 1):
        t = ts[i]
        prev_t = int(sch.previous_timestep(t))
        a_t = float(sch.alphas_cumprod[t])
        a_p = float(sch.alphas_cumprod[prev_t]) if prev_t >= 0 else 1.0
        gen_seed = 100 + i
        ref = sch.step(_guide(c, u, gs), t, x, generator=torch.Generator().manual_seed(gen_seed))
        z = torch.randn(SHAPE, generator=torch.Generator().manual_seed(gen_seed), dtype=dtype)
        prev, x0 = ddpm_step(x, c, a_t, a_p, variance_type=variance_type, prediction_type=pred, add_noise=t > 0,
                             noise=z if t > 0 else None, **_kw(u, gs))
        _close(prev, ref.prev_sample, dtype)
        _close(x0, ref.pred_original_sample, dtype)


def test_ddpm_last_step_without_noise_and_clip():
    sch = diffusers.DDPMScheduler(clip_sample=True, clip_sample_range=1.0)
    s = make_schedule("linear")
    sch.alphas_cumprod = s.alphas_cumprod
    sch.one = torch.tensor(1.0, dtype=torch.float64)
    x, c, _, _ = _inputs(torch.float64, False)
    ref = sch.step(c, 0, x)
    prev, x0 = ddpm_step(x, c, s.alpha_prod(0), 1.0, add_noise=False, clip_sample=True)
    _close(prev, ref.prev_sample, torch.float64)
    _close(x0, ref.pred_original_sample, torch.float64)


# ---------------------------------------------------------------- Euler / Euler ancestral
# (float32: diffusers upcasts to float32)

def _sig_sched(cls, pred, steps=10, **kw):
    sch = cls(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, prediction_type=pred,
              timestep_spacing="trailing", **kw)
    sch.set_timesteps(steps)
    return sch


@pytest.mark.parametrize("pred", PREDS)
@pytest.mark.parametrize("guided", [False, True])
@pytest.mark.parametrize("churn", [0.0, 4.0])
def test_euler_matches_diffusers(pred, guided, churn):
    sch = _sig_sched(diffusers.EulerDiscreteScheduler, pred)
    x, c, u, _ = _inputs(torch.float32, guided, scale=float(sch.sigmas[0]))
    gs = 7.5
    n = len(sch.sigmas) - 1
    for i, t in enumerate(sch.timesteps[:4]):
        sig, sn = float(sch.sigmas[i]), float(sch.sigmas[i + 1])
        sch.scale_model_input(x, t)
        ref = sch.step(_guide(c, u, gs), t, x, s_churn=churn, s_tmin=0.5, s_tmax=10.0,
                       generator=torch.Generator().manual_seed(i))
        z = torch.randn(SHAPE, generator=torch.Generator().manual_seed(i)) if churn > 0 else None
        prev, x0 = euler_step(x, c, sig, sn, prediction_type=pred, s_churn=churn, s_tmin=0.5, s_tmax=10.0,
                              num_steps=n, noise=z, **_kw(u, gs))
        _close(prev, ref.prev_sample, torch.float32)
        _close(x0, ref.pred_original_sample, torch.float32)
        x = ref.prev_sample


@pytest.mark.parametrize("pred", ["epsilon", "v_prediction"])  # diffusers has no "sample" here
@pytest.mark.parametrize("guided", [False, True])
def test_euler_ancestral_matches_diffusers(pred, guided):
    sch = _sig_sched(diffusers.EulerAncestralDiscreteScheduler, pred)
    x, c, u, _ = _inputs(torch.float32, guided, scale=float(sch.sigmas[0]))
    gs = 4.0
    for i, t in enumerate(sch.timesteps):
        sig, sn = float(sch.sigmas[i]), float(sch.sigmas[i + 1])
        sch.scale_model_input(x, t)
        ref = sch.step(_guide(c, u, gs), t, x, generator=torch.Generator().manual_seed(i))
        z = torch.randn(SHAPE, generator=torch.Generator().manual_seed(i))
        prev, x0 = euler_ancestral_step(x, c, sig, sn, prediction_type=pred, noise=z, **_kw(u, gs))
        _close(prev, ref.prev_sample, torch.float32)
        _close(x0, ref.pred_original_sample, torch.float32)
        x = ref.prev_sample


# ---------------------------------------------------------------- k-diffusion (float64, dtype-agnostic oracle)

def _k_model(pred, c):
    """k-diffusion model contract model(x, sigma) -> denoised for a fixed model output."""
    def model(x, sigma, **kw):
        s = sigma.reshape(-1, *([1] * (x.dim() - 1)))
        if pred == "sample":
            return c
        if pred == "epsilon":
            return x - s * c
        return x / (s**2 + 1) - c * s / (s**2 + 1).sqrt()
    return model


@pytest.mark.parametrize("pred", PREDS)
def test_euler_family_match_k_diffusion_float64(pred):
    from test_schedules import load_k_sampling

    ks = load_k_sampling()
    sigmas = gencore.diffusion.karras_sigmas(4, 0.03, 14.6)
    x, c, _, z = _inputs(torch.float64, False, scale=14.6)
    # Euler, one step
    ref = ks.sample_euler(_k_model(pred, c), x, sigmas[:2], disable=True)
    prev, _ = euler_step(x, c, float(sigmas[0]), float(sigmas[1]), prediction_type=pred)
    _close(prev, ref, torch.float64)
    # Euler ancestral, one step, noise via noise_sampler
    ref = ks.sample_euler_ancestral(_k_model(pred, c), x, sigmas[:2], disable=True, eta=0.6, s_noise=0.9,
                                    noise_sampler=lambda a, b: z)
    prev, _ = euler_ancestral_step(x, c, float(sigmas[0]), float(sigmas[1]), eta=0.6, s_noise=0.9, noise=z,
                                   prediction_type=pred)
    _close(prev, ref, torch.float64)
    # Heun, one full step (two stages)
    ref = ks.sample_heun(_k_model(pred, c), x, sigmas[:2], disable=True)
    x1, _, d = heun_step(x, c, float(sigmas[0]), float(sigmas[1]), prediction_type=pred)
    x2, _, _ = heun_step(x1, c, float(sigmas[0]), float(sigmas[1]), stage=2, derivative=d, original_sample=x,
                         prediction_type=pred)
    _close(x2, ref, torch.float64)
    # DPM++ 2M, the whole 4-level ladder in k-diffusion's (ve) space
    ref = ks.sample_dpmpp_2m(_k_model(pred, c), x, sigmas, disable=True)
    xs, old = x, None
    for i in range(len(sigmas) - 1):
        xs, x0 = dpmpp_2m_step(xs, c, float(sigmas[i]), float(sigmas[i + 1]), prev_x0=old,
                               sigma_prev=float(sigmas[i - 1]) if i else None, parameterization="ve",
                               prediction_type=pred)
        old = x0
    _close(xs, ref, torch.float64)


# ---------------------------------------------------------------- Heun

@pytest.mark.parametrize("pred", PREDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("guided", [False, True])
def test_heun_matches_diffusers(pred, dtype, guided):
    sch = _sig_sched(diffusers.HeunDiscreteScheduler, pred, steps=4)
    if dtype == torch.float64:
        sch.sigmas = sch.sigmas.double()
    x, _, u, _ = _inputs(dtype, guided, scale=float(sch.sigmas[0]))
    gs = 2.0
    g = torch.Generator().manual_seed(5)
    outs = [torch.randn(SHAPE, generator=g, dtype=dtype) for _ in sch.timesteps]
    ref_x = x
    ours = x
    sig = torch.cat([sch.sigmas[:1], sch.sigmas[1:-1:2], sch.sigmas[-1:]])
    k = 0
    for j in range(len(sig) - 1):
        s0, s1 = float(sig[j]), float(sig[j + 1])
        cc = outs[k]
        ref = sch.step(_guide(cc, u, gs), sch.timesteps[k], ref_x)
        x1, x0, d = heun_step(ours, cc, s0, s1, prediction_type=pred, **_kw(u, gs))
        _close(x1, ref.prev_sample, dtype)
        _close(x0, ref.pred_original_sample, dtype)
        ref_x, k = ref.prev_sample, k + 1
        if s1 == 0:
            break
        cc = outs[k]
        ref = sch.step(_guide(cc, u, gs), sch.timesteps[k], ref_x)
        x2, x0, _ = heun_step(x1, cc, s0, s1, stage=2, derivative=d, original_sample=ours, prediction_type=pred,
                              **_kw(u, gs))
        _close(x2, ref.prev_sample, dtype)
        _close(x0, ref.pred_original_sample, dtype)
        ref_x, ours, k = ref.prev_sample, x2, k + 1
    assert k == len(sch.timesteps)


# ---------------------------------------------------------------- DPM-Solver++ 2M

@pytest.mark.parametrize("pred", PREDS)
@pytest.mark.parametrize("guided", [False, True])
@pytest.mark.parametrize("steps,final", [(6, "zero"), (5, "sigma_min"), (16, "sigma_min")])
def test_dpmpp_2m_matches_diffusers(pred, guided, steps, final):
    sch = diffusers.DPMSolverMultistepScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, prediction_type=pred,
        algorithm_type="dpmsolver++", solver_type="midpoint", solver_order=2, lower_order_final=True,
        final_sigmas_type=final, timestep_spacing="trailing")
    sch.set_timesteps(steps)
    x, _, u, _ = _inputs(torch.float32, guided)
    gs = 6.0
    g = torch.Generator().manual_seed(9)
    ref_x, ours, old = x, x, None
    n = len(sch.timesteps)
    for i, t in enumerate(sch.timesteps):
        cc = torch.randn(SHAPE, generator=g)
        ref_x = sch.step(_guide(cc, u, gs), t, ref_x).prev_sample
        lower = dpmpp_2m_lower_order(i, n, final_sigmas_type=final)
        ours, x0 = dpmpp_2m_step(ours, cc, float(sch.sigmas[i]), float(sch.sigmas[i + 1]), prev_x0=old,
                                 sigma_prev=float(sch.sigmas[i - 1]) if i else None, lower_order=lower,
                                 prediction_type=pred, **_kw(u, gs))
        old = x0
        _close(ours, ref_x, torch.float32, rel32=2e-5)


# ---------------------------------------------------------------- flow matching

@pytest.mark.parametrize("guided", [False, True])
@pytest.mark.parametrize("stochastic", [False, True])
def test_flow_match_euler_matches_diffusers(guided, stochastic):
    sch = diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0, stochastic_sampling=stochastic)
    sch.set_timesteps(6)
    x, c, u, _ = _inputs(torch.float32, guided)
    gs = 3.5
    for i, t in enumerate(sch.timesteps):
        ref = sch.step(_guide(c, u, gs), t, x, generator=torch.Generator().manual_seed(i))
        z = torch.randn(SHAPE, generator=torch.Generator().manual_seed(i)) if stochastic else None
        prev, x0 = flow_match_euler_step(x, c, float(sch.sigmas[i]), float(sch.sigmas[i + 1]), stochastic=stochastic,
                                         noise=z, **_kw(u, gs))
        _close(prev, ref.prev_sample, torch.float32)
        _close(x0, x.double() - float(sch.sigmas[i]) * _guide(c, u, gs).double(), torch.float32)
        x = ref.prev_sample


@pytest.mark.parametrize("pred", ["epsilon", "sample", "v_prediction"])
def test_flow_prediction_types_are_consistent(pred):
    """Every prediction type describes the same (x_0, eps) pair on the flow path."""
    g = torch.Generator().manual_seed(3)
    x0 = torch.randn(SHAPE, generator=g, dtype=torch.float64)
    eps = torch.randn(SHAPE, generator=g, dtype=torch.float64)
    s, sn = 0.7, 0.4
    x = (1 - s) * x0 + s * eps
    a, st = 1 - s, s
    sig = st / a
    abar = 1 / (1 + sig**2)
    v = math.sqrt(abar) * eps - math.sqrt(1 - abar) * x0  # v on the variance-preserving sample
    out = {"epsilon": eps, "sample": x0, "v_prediction": v}[pred]
    prev, x0_hat = flow_match_euler_step(x, out, s, sn, prediction_type=pred)
    prev_ref, _ = flow_match_euler_step(x, eps - x0, s, sn, prediction_type="flow")
    _close(x0_hat, x0, torch.float64)
    _close(prev, prev_ref, torch.float64)


# ---------------------------------------------------------------- shared behaviour

def test_prediction_types_agree_on_ddpm_sample():
    """epsilon / v / sample / flow outputs describing the same truth give the same DDIM step."""
    s = make_schedule("linear")
    g = torch.Generator().manual_seed(4)
    x0 = torch.randn(SHAPE, generator=g, dtype=torch.float64)
    eps = torch.randn(SHAPE, generator=g, dtype=torch.float64)
    at, ap = s.alpha_prod(600), s.alpha_prod(500)
    x = at**0.5 * x0 + (1 - at) ** 0.5 * eps
    outs = {"epsilon": eps, "sample": x0, "v_prediction": at**0.5 * eps - (1 - at) ** 0.5 * x0,
            "flow": eps - x0}
    base = ddim_step(x, eps, at, ap)[0]
    for pred, m in outs.items():
        prev, xh = ddim_step(x, m, at, ap, prediction_type=pred)
        _close(xh, x0, torch.float64)
        _close(prev, base, torch.float64)


def test_per_sample_coefficients_equal_scalar_calls():
    s = make_schedule("linear")
    x, c, u, z = _inputs(torch.float64, True)
    ts = [900, 400, 10]
    a_t = torch.tensor([s.alpha_prod(t) for t in ts], dtype=torch.float64)
    a_p = torch.tensor([s.alpha_prod(t - 20) for t in ts], dtype=torch.float64)
    prev, x0 = ddim_step(x, c, a_t, a_p, eta=0.5, uncond_output=u, guidance_scale=2.0, noise=z)
    for i, t in enumerate(ts):
        p1, x1 = ddim_step(x[i:i + 1], c[i:i + 1], s.alpha_prod(t), s.alpha_prod(t - 20), eta=0.5,
                           uncond_output=u[i:i + 1], guidance_scale=2.0, noise=z[i:i + 1])
        _close(prev[i:i + 1], p1, torch.float64)
        _close(x0[i:i + 1], x1, torch.float64)
    sig = torch.tensor([14.0, 3.0, 0.5], dtype=torch.float64)
    sn = torch.tensor([10.0, 1.0, 0.0], dtype=torch.float64)
    for fn in (euler_step, dpmpp_2m_step):
        prev, _ = fn(x, c, sig, sn)
        for i in range(3):
            p1, _ = fn(x[i:i + 1], c[i:i + 1], float(sig[i]), float(sn[i]))
            _close(prev[i:i + 1], p1, torch.float64)
    add = torch.tensor([True, False, True])
    prev, _ = ddpm_step(x, c, a_t, a_p, add_noise=add, noise=z)
    for i in range(3):
        p1, _ = ddpm_step(x[i:i + 1], c[i:i + 1], float(a_t[i]), float(a_p[i]), add_noise=bool(add[i]),
                          noise=z[i:i + 1] if add[i] else None)
        _close(prev[i:i + 1], p1, torch.float64)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_seeded_noise_equals_gencore_randn(dtype):
    s = make_schedule("linear")
    x, c, _, _ = _inputs(dtype, False)
    z = gencore.randn(SHAPE, seed=7, stream=3, sample_offset=11, dtype=dtype)
    a = ddpm_step(x, c, s.alpha_prod(500), s.alpha_prod(499), seed=7, stream=3, sample_offset=11)
    b = ddpm_step(x, c, s.alpha_prod(500), s.alpha_prod(499), noise=z)
    assert torch.equal(a[0], b[0])
    a = euler_ancestral_step(x, c, 3.0, 1.0, seed=7, stream=3, sample_offset=11)
    b = euler_ancestral_step(x, c, 3.0, 1.0, noise=z)
    assert torch.equal(a[0], b[0])


def test_bad_step_arguments_name_the_argument():
    x = torch.randn(2, 3)
    c = torch.randn(2, 3)
    with pytest.raises(ValueError, match="uncond_output"):
        ddim_step(x, c, 0.5, 0.6, guidance_scale=3.0)
    with pytest.raises(ValueError, match="prediction_type"):
        ddim_step(x, c, 0.5, 0.6, prediction_type="noise")
    with pytest.raises(ValueError, match="variance_type"):
        ddpm_step(x, c, 0.5, 0.6, variance_type="learned", seed=0)
    with pytest.raises(ValueError, match="model_output"):
        ddim_step(x, torch.randn(2, 4), 0.5, 0.6)
    with pytest.raises(TypeError, match="model_output"):
        ddim_step(x, c.double(), 0.5, 0.6)
    with pytest.raises(TypeError, match="sample"):
        ddim_step(x.long(), c, 0.5, 0.6)
    with pytest.raises(ValueError, match="alpha_prod_t"):
        ddim_step(x, c, 1.5, 0.6)
    with pytest.raises(ValueError, match="alpha_prod_t"):
        ddim_step(x, c, torch.ones(3), 0.6)
    with pytest.raises(TypeError, match="alpha_prod_t_prev"):
        ddim_step(x, c, 0.5, "0.6")
    with pytest.raises(ValueError, match="seed"):
        ddim_step(x, c, 0.5, 0.6, eta=1.0)
    with pytest.raises(ValueError, match="seed"):
        ddpm_step(x, c, 0.5, 0.6)
    with pytest.raises(ValueError, match="noise must have the shape"):
        ddim_step(x, c, 0.5, 0.6, eta=1.0, noise=torch.randn(3, 3))
    with pytest.raises(ValueError, match="num_steps"):
        euler_step(x, c, 2.0, 1.0, s_churn=1.0, seed=0)
    with pytest.raises(ValueError, match="sigma"):
        euler_step(x, c, 0.0, 1.0)
    with pytest.raises(ValueError, match="stage"):
        heun_step(x, c, 2.0, 1.0, stage=3)
    with pytest.raises(ValueError, match="derivative"):
        heun_step(x, c, 2.0, 1.0, stage=2)
    with pytest.raises(ValueError, match="sigma_prev"):
        dpmpp_2m_step(x, c, 2.0, 1.0, prev_x0=c)
    with pytest.raises(ValueError, match="parameterization"):
        dpmpp_2m_step(x, c, 2.0, 1.0, parameterization="edm")
    with pytest.raises(ValueError, match="sigma"):
        flow_match_euler_step(x, c, 1.5, 0.5)
    with pytest.raises(ValueError, match="stream"):
        ddpm_step(x, c, 0.5, 0.6, seed=0, stream=-1)


@pytest.mark.parametrize("force_reference", [False, True])
def test_zero_terminal_snr_v_prediction_matches_diffusers(force_reference, monkeypatch):
    """At the first step of a zero-terminal-SNR schedule alpha_prod_t = 0: x0 = -v, no division by zero."""
    from diffusers import DDIMScheduler as DiffusersDDIM

    if force_reference:
        monkeypatch.setenv("GENCORE_FORCE_REFERENCE", "1")
    ref = DiffusersDDIM(rescale_betas_zero_snr=True, prediction_type="v_prediction", timestep_spacing="trailing",
                       clip_sample=False)
    ref.set_timesteps(10)
    schedule = make_schedule("linear", rescale_zero_snr=True)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64)
    v = torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64)
    t = int(ref.timesteps[0])
    t_prev = t - 1000 // 10
    prev, x0 = ddim_step(x, v, float(schedule.alphas_cumprod[t]), float(schedule.alphas_cumprod[t_prev]),
                         prediction_type="v_prediction")
    assert float(schedule.alphas_cumprod[t]) == pytest.approx(0.0, abs=1e-12)
    torch.testing.assert_close(x0, -v, rtol=1e-9, atol=1e-9)
    out = ref.step(v.float(), t, x.float())
    torch.testing.assert_close(prev.float(), out.prev_sample, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x0.float(), out.pred_original_sample, rtol=1e-5, atol=1e-5)
