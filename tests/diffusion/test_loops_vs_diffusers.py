"""Whole sampling loops against diffusers' schedulers and k-diffusion's samplers: same model (the
exact Gaussian-mixture denoiser), same initial noise, same step noise; max abs difference
<= 1e-5 in float32 and <= 1e-10 in float64.

diffusers computes its schedule in float32 and upcasts samples to float32 in the sigma-based
schedulers, so float64 comparisons go against diffusers only for DDPM/DDIM (with its stored
float32 schedule values held in float64) and against k-diffusion (which runs in the sigmas'
dtype) for the sigma-based samplers.
"""

from __future__ import annotations

import pytest
import torch

from _oracles import diffusers_or_skip, k_sampling
from gencore.diffusion import GaussianMixture, interp_sigmas, make_schedule, sample, timesteps
from gencore.rng import randn

pytestmark = pytest.mark.usefixtures("one_thread")

diffusers = diffusers_or_skip()

D = 4


def _mixture():
    g = torch.Generator().manual_seed(0)
    return GaussianMixture(torch.randn(3, D, generator=g, dtype=torch.float64) * 1.5,
                           torch.rand(3, generator=g, dtype=torch.float64) + 0.3,
                           torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64))


GM = _mixture()
SEED = 17

SCHEDULER = {
    "ddpm": "DDPMScheduler",
    "ddim": "DDIMScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler_ancestral": "EulerAncestralDiscreteScheduler",
    "heun": "HeunDiscreteScheduler",
    "dpmpp_2m": "DPMSolverMultistepScheduler",
}


def _diffusers_config(sampler, schedule_name, prediction_type, spacing):
    cfg = dict(beta_schedule=schedule_name, prediction_type=prediction_type, timestep_spacing=spacing,
               beta_start=1e-4, beta_end=0.02)
    if sampler in ("ddpm", "ddim"):
        cfg["clip_sample"] = False
    if sampler == "ddim":
        cfg["set_alpha_to_one"] = True
    return cfg


class _PatchedNoise:
    """Makes diffusers draw gencore's counter-based noise for step ``i`` (stream = i)."""

    def __init__(self, monkeypatch, module):
        self.step = 0
        monkeypatch.setattr(module, "randn_tensor", self)

    def __call__(self, shape, generator=None, device=None, dtype=None, **kw):
        return randn(tuple(shape), seed=SEED, stream=self.step, dtype=dtype, device=device)


def _diffusers_loop(sched, model, noise, steps, patch=None, **step_kw):
    sched.set_timesteps(steps)
    x = noise * sched.init_noise_sigma
    for i, t in enumerate(sched.timesteps):
        if patch is not None:
            # Heun calls step twice per level; its noise-free loop needs no stream.
            patch.step = i
        out = model(sched.scale_model_input(x, t), t.reshape(1).expand(x.shape[0]).to(x.dtype))
        x = sched.step(out, t, x, **step_kw).prev_sample
    return x


CASES = [
    # sampler, schedule, prediction type, spacing, eta
    ("ddpm", "linear", "epsilon", "trailing", 0.0),
    ("ddpm", "scaled_linear", "v_prediction", "leading", 0.0),
    ("ddim", "linear", "epsilon", "trailing", 0.0),
    ("ddim", "squaredcos_cap_v2", "v_prediction", "trailing", 0.0),
    ("ddim", "linear", "sample", "leading", 0.0),
    ("ddim", "scaled_linear", "epsilon", "trailing", 1.0),
    ("ddim", "linear", "v_prediction", "trailing", 0.3),
    ("euler", "linear", "epsilon", "trailing", 0.0),
    ("euler", "scaled_linear", "v_prediction", "leading", 0.0),
    ("euler", "squaredcos_cap_v2", "sample", "linspace", 0.0),
    ("euler_ancestral", "linear", "epsilon", "trailing", 1.0),
    ("euler_ancestral", "scaled_linear", "v_prediction", "leading", 1.0),
    ("heun", "linear", "epsilon", "trailing", 0.0),
    ("heun", "scaled_linear", "v_prediction", "linspace", 0.0),
    ("dpmpp_2m", "linear", "epsilon", "trailing", 0.0),
    ("dpmpp_2m", "scaled_linear", "v_prediction", "trailing", 0.0),
    ("dpmpp_2m", "squaredcos_cap_v2", "sample", "trailing", 0.0),
]


@pytest.mark.parametrize("steps", [10, 25])
@pytest.mark.parametrize("sampler, schedule_name, prediction_type, spacing, eta", CASES)
def test_sample_matches_diffusers_float32(monkeypatch, sampler, schedule_name, prediction_type, spacing, eta, steps):
    # diffusers builds its schedule in float32: compare the loops on the same schedule values.
    sch = make_schedule(schedule_name, compute_dtype=torch.float32)
    model = GM.denoiser(sch, prediction_type)
    noise = torch.randn(16, D, generator=torch.Generator().manual_seed(steps))
    ours = sample(model, (16, D), sampler=sampler, steps=steps, schedule=sch, eta=eta,
                  prediction_type=prediction_type, timestep_spacing=spacing, seed=SEED, init_noise=noise)
    cls = getattr(diffusers, SCHEDULER[sampler])
    sched = cls(**_diffusers_config(sampler, schedule_name, prediction_type, spacing))
    module = __import__(cls.__module__, fromlist=["randn_tensor"])
    patch = _PatchedNoise(monkeypatch, module) if hasattr(module, "randn_tensor") else None
    kw = {"eta": eta} if sampler == "ddim" else {}
    theirs = _diffusers_loop(sched, model, noise, steps, patch, **kw)
    err = (ours.double() - theirs.double()).abs().max().item()
    if err > 1e-5:
        # Where diffusers' own float32 rounding exceeds the bound, gencore must be at least as close
        # to the float64 run of the same loop (the project's low-precision criterion).
        ours64 = sample(model, (16, D), sampler=sampler, steps=steps, schedule=sch, eta=eta,
                        prediction_type=prediction_type, timestep_spacing=spacing, seed=SEED,
                        init_noise=noise.double())
        e_ours = (ours.double() - ours64).abs().max().item()
        e_theirs = (theirs.double() - ours64).abs().max().item()
        assert e_ours <= 2 * e_theirs + 1e-6, f"max abs difference {err:.3g}; vs float64 {e_ours:.3g} / {e_theirs:.3g}"


@pytest.mark.parametrize("sampler, eta", [("ddpm", 0.0), ("ddim", 0.0), ("ddim", 0.7)])
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_sample_matches_diffusers_float64(monkeypatch, sampler, eta, prediction_type):
    """diffusers' DDPM/DDIM compute in the sample's dtype; its float32 schedule values, held in
    float64, are gencore's ``make_schedule(..., compute_dtype=torch.float32)``."""
    sch = make_schedule("linear", compute_dtype=torch.float32)
    model = GM.denoiser(sch, prediction_type)
    noise = torch.randn(16, D, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ours = sample(model, (16, D), sampler=sampler, steps=20, schedule=sch, eta=eta, prediction_type=prediction_type,
                  seed=SEED, init_noise=noise)
    cls = getattr(diffusers, SCHEDULER[sampler])
    sched = cls(**_diffusers_config(sampler, "linear", prediction_type, "trailing"))
    sched.alphas_cumprod = sched.alphas_cumprod.double()
    if sampler == "ddim":
        sched.final_alpha_cumprod = sched.final_alpha_cumprod.double()
    else:
        sched.one = sched.one.double()
    module = __import__(cls.__module__, fromlist=["randn_tensor"])
    patch = _PatchedNoise(monkeypatch, module)
    theirs = _diffusers_loop(sched, model, noise, 20, patch, **({"eta": eta} if sampler == "ddim" else {}))
    assert theirs.dtype == torch.float64
    err = (ours - theirs).abs().max().item()
    assert err <= 1e-10, f"max abs difference {err:.3g}"


@pytest.mark.parametrize("sampler", ["euler", "euler_ancestral", "heun", "dpmpp_2m"])
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_sample_matches_k_diffusion_float64(sampler, prediction_type):
    """The same sigmas, the exact sigma denoiser on k-diffusion's side, the VP model on ours."""
    ks = k_sampling()
    sch = make_schedule("scaled_linear", beta_start=0.00085, beta_end=0.012)
    steps = 12
    ts = timesteps(sch, steps, "trailing", integer=False)
    sigmas = torch.cat([interp_sigmas(sch, ts), torch.zeros(1, dtype=torch.float64)])
    noise = torch.randn(16, D, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    eta = 1.0 if sampler == "euler_ancestral" else 0.0
    ours = sample(GM.denoiser(sch, prediction_type), (16, D), sampler=sampler, steps=steps, schedule=sch, eta=eta,
                  prediction_type=prediction_type, seed=SEED, init_noise=noise)
    kfn = getattr(ks, f"sample_{sampler}")
    # diffusers' DPM-Solver starts from x_t = noise (VP), k-diffusion from x = noise * sigma_max (VE):
    # x_t = noise is x = noise * sqrt(sigma_max^2 + 1) in k-diffusion's variable.
    x = noise * ((sigmas[0] ** 2 + 1) ** 0.5 if sampler == "dpmpp_2m" else sigmas[0])
    extra = {}
    if sampler == "euler_ancestral":
        counter = iter(range(steps))
        extra["noise_sampler"] = lambda s, sn: randn(16, D, seed=SEED, stream=next(counter), dtype=torch.float64)
    theirs = kfn(GM.sigma_denoiser(), x, sigmas, disable=True, **extra)
    err = (ours - theirs).abs().max().item()
    assert err <= 1e-10, f"max abs difference {err:.3g}"


def test_flow_match_loop_matches_diffusers():
    from gencore.diffusion import sample_flow_match_euler

    sched = diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0)
    sched.set_timesteps(20)
    v = GM.velocity_field()
    noise = torch.randn(16, D, generator=torch.Generator().manual_seed(3))
    x = noise.clone()
    for t in sched.timesteps:
        x = sched.step(v(x, t.reshape(1) / 1000), t, x).prev_sample
    ours = sample_flow_match_euler(v, noise, sched.sigmas, disable=True)
    assert (ours - x).abs().max().item() <= 1e-5
