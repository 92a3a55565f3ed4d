"""gencore's diffusers-compatible schedulers against diffusers' own: whole loops over config grids
(same generator noise), the public API (config keys, signatures, save/load), add_noise, the fused
guidance helper, counter-based noise and unsupported options."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest
import torch
from gencore.diffusion import GaussianMixture
from gencore.rng import randn

diffusers = pytest.importorskip("diffusers")
G = pytest.importorskip("gencore.integrations.diffusers")

NAMES = ["DDPMScheduler", "DDIMScheduler", "EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler",
         "HeunDiscreteScheduler", "DPMSolverMultistepScheduler", "FlowMatchEulerDiscreteScheduler"]
D = 6


pytestmark = pytest.mark.usefixtures("one_thread")


def _mixture():
    g = torch.Generator().manual_seed(0)
    return GaussianMixture(torch.randn(3, D, generator=g, dtype=torch.float64) * 1.5,
                           torch.rand(3, generator=g, dtype=torch.float64) + 0.3, torch.tensor([0.2, 0.3, 0.5]))


GM = _mixture()


def _model(sched, prediction_type):
    if "FlowMatch" in type(sched).__name__:
        v = GM.velocity_field()
        return lambda x, t: v(x, t / 1000)
    return GM.denoiser(sched.alphas_cumprod.double().clamp(min=1e-12), prediction_type)


def _loop(sched, steps, dtype=torch.float32, batch=8, set_kw=None, **step_kw):
    sched.set_timesteps(steps, **(set_kw or {}))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, D, generator=g, dtype=dtype) * getattr(sched, "init_noise_sigma", 1.0)
    model = _model(sched, sched.config.get("prediction_type", "epsilon"))
    takes_gen = "generator" in inspect.signature(sched.step).parameters
    for t in sched.timesteps:
        xin = sched.scale_model_input(x, t) if hasattr(sched, "scale_model_input") else x
        out = model(xin, t.reshape(1).expand(batch).to(torch.float64))
        x = sched.step(out, t, x, **({"generator": g} if takes_gen else {}), **step_kw).prev_sample
    return x


CONFIGS = [
    ("DDPMScheduler", {}, {}),
    ("DDPMScheduler", dict(prediction_type="v_prediction", timestep_spacing="trailing", variance_type="fixed_large",
                           clip_sample=False), {}),
    ("DDPMScheduler", dict(beta_schedule="sigmoid", prediction_type="sample", timestep_spacing="linspace"), {}),
    ("DDPMScheduler", dict(beta_schedule="squaredcos_cap_v2", variance_type="fixed_small_log", steps_offset=1), {}),
    ("DDIMScheduler", {}, {}),
    ("DDIMScheduler", dict(clip_sample=False, timestep_spacing="trailing"), dict(eta=1.0)),
    ("DDIMScheduler", dict(beta_schedule="scaled_linear", prediction_type="v_prediction", clip_sample=False,
                           timestep_spacing="trailing", set_alpha_to_one=False), dict(eta=0.5)),
    ("DDIMScheduler", dict(beta_schedule="squaredcos_cap_v2", timestep_spacing="linspace", steps_offset=1),
     dict(eta=0.3, use_clipped_model_output=True)),
    ("EulerDiscreteScheduler", {}, {}),
    ("EulerDiscreteScheduler", dict(use_karras_sigmas=True, prediction_type="v_prediction"), {}),
    ("EulerDiscreteScheduler", dict(timestep_spacing="trailing", beta_schedule="scaled_linear"), dict(s_churn=1.0)),
    ("EulerDiscreteScheduler", dict(timestep_spacing="leading", steps_offset=1, final_sigmas_type="sigma_min",
                                    rescale_betas_zero_snr=True), {}),
    ("EulerAncestralDiscreteScheduler", {}, {}),
    ("EulerAncestralDiscreteScheduler", dict(timestep_spacing="leading", steps_offset=1,
                                             prediction_type="v_prediction"), {}),
    ("EulerAncestralDiscreteScheduler", dict(timestep_spacing="trailing", beta_schedule="squaredcos_cap_v2"), {}),
    ("HeunDiscreteScheduler", {}, {}),
    ("HeunDiscreteScheduler", dict(use_karras_sigmas=True, beta_schedule="scaled_linear"), {}),
    ("HeunDiscreteScheduler", dict(prediction_type="v_prediction", timestep_spacing="trailing", clip_sample=True,
                                   clip_sample_range=3.0), {}),
    ("DPMSolverMultistepScheduler", {}, {}),
    ("DPMSolverMultistepScheduler", dict(use_karras_sigmas=True, timestep_spacing="trailing"), {}),
    ("DPMSolverMultistepScheduler", dict(final_sigmas_type="sigma_min", prediction_type="v_prediction",
                                         lower_order_final=False), {}),
    ("DPMSolverMultistepScheduler", dict(timestep_spacing="leading", steps_offset=1, euler_at_final=True,
                                         prediction_type="sample", lambda_min_clipped=-5.1), {}),
    ("DPMSolverMultistepScheduler", dict(solver_order=1, beta_schedule="squaredcos_cap_v2"), {}),
    ("FlowMatchEulerDiscreteScheduler", dict(shift=3.0), {}),
    ("FlowMatchEulerDiscreteScheduler", dict(use_karras_sigmas=True), {}),
    ("FlowMatchEulerDiscreteScheduler", dict(shift_terminal=0.1, stochastic_sampling=True), {}),
    ("FlowMatchEulerDiscreteScheduler", dict(use_dynamic_shifting=True, time_shift_type="linear"),
     {"__set__": {"mu": 1.2}}),
]


@pytest.mark.parametrize("steps", [8, 20])
@pytest.mark.parametrize("name, config, step_kw", CONFIGS, ids=lambda v: v if isinstance(v, str) else None)
def test_loop_matches_diffusers(name, config, step_kw, steps):
    step_kw = dict(step_kw)
    set_kw = step_kw.pop("__set__", None)
    theirs = _loop(getattr(diffusers, name)(**config), steps, set_kw=set_kw, **step_kw)
    ours_s = getattr(G, name)(**config)
    ours = _loop(ours_s, steps, set_kw=set_kw, **step_kw)
    assert torch.isfinite(ours).all()
    err = (ours - theirs).abs().max().item()
    if err > 1e-5:
        # Only where diffusers' own float32 rounding exceeds the bound (e.g. dividing by
        # alpha ~ 5e-5 at the cosine schedule's first step): gencore must then be at least as
        # close to the float64 run of the same loop (the project's low-precision criterion).
        ours64 = _loop(getattr(G, name)(**config), steps, dtype=torch.float64, set_kw=set_kw, **step_kw)
        e_ours = (ours.double() - ours64).abs().max().item()
        e_theirs = (theirs.double() - ours64).abs().max().item()
        assert e_ours <= 2 * e_theirs + 1e-6, f"{name} {config}: {err:.3g}; vs float64 {e_ours:.3g} / {e_theirs:.3g}"


@pytest.mark.parametrize("name, config, step_kw", [
    ("DDPMScheduler", dict(clip_sample=False, timestep_spacing="trailing"), {}),
    ("DDPMScheduler", dict(prediction_type="v_prediction", variance_type="fixed_large"), {}),
    ("DDIMScheduler", dict(clip_sample=False, timestep_spacing="trailing"), dict(eta=0.0)),
    ("DDIMScheduler", dict(prediction_type="v_prediction", set_alpha_to_one=False), dict(eta=0.8)),
])
def test_loop_matches_diffusers_float64(name, config, step_kw):
    """diffusers' DDPM/DDIM run in the sample's dtype; with its float32 schedule values held in
    float64 on both sides the loops agree to float64 rounding."""
    d = getattr(diffusers, name)(**config)
    d.alphas_cumprod = d.alphas_cumprod.double()
    if name == "DDIMScheduler":
        d.final_alpha_cumprod = d.final_alpha_cumprod.double()
    else:
        d.one = d.one.double()
    theirs = _loop(d, 15, dtype=torch.float64, **step_kw)
    ours = _loop(getattr(G, name)(**config), 15, dtype=torch.float64, **step_kw)
    assert ours.dtype == torch.float64
    assert (ours - theirs).abs().max().item() <= 1e-10


@pytest.mark.parametrize("name", NAMES)
def test_public_api_matches_diffusers(name, tmp_path):
    theirs_cls, ours_cls = getattr(diffusers, name), getattr(G, name)
    assert issubclass(ours_cls, diffusers.SchedulerMixin) and issubclass(ours_cls, diffusers.ConfigMixin)
    theirs, ours = theirs_cls(), ours_cls()
    assert dict(ours.config) .keys() == dict(theirs.config).keys()
    for method in ("step", "set_timesteps"):
        assert list(inspect.signature(getattr(ours, method)).parameters) == \
            list(inspect.signature(getattr(theirs, method)).parameters), method
    for attr in ("order", "timesteps", "sigmas", "init_noise_sigma", "alphas_cumprod", "scale_model_input",
                 "add_noise", "step_index", "begin_index", "set_begin_index", "scale_noise"):
        assert hasattr(ours, attr) == hasattr(theirs, attr), attr
    assert ours.order == theirs.order and len(ours) == len(theirs)
    # from_config both ways, save_pretrained / from_pretrained round trips, loadable by diffusers.
    cfg = dict(theirs.config)
    assert type(ours_cls.from_config(theirs.config)) is ours_cls
    ours.save_pretrained(tmp_path)
    back = theirs_cls.from_pretrained(tmp_path)
    public = lambda c: {k: v for k, v in dict(c).items() if not k.startswith("_")}
    assert type(back) is theirs_cls and public(back.config) == public(cfg)
    again = ours_cls.from_pretrained(tmp_path)
    assert type(again) is ours_cls and public(again.config) == public(ours.config)


def test_pipeline_style_swap_keeps_config():
    d = diffusers.DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                                timestep_spacing="trailing", prediction_type="v_prediction", clip_sample=False)
    ours = G.DPMSolverMultistepScheduler.from_config(d.config)
    assert ours.config.beta_schedule == "scaled_linear" and ours.config.prediction_type == "v_prediction"
    assert ours.config.timestep_spacing == "trailing"
    ref = diffusers.DPMSolverMultistepScheduler.from_config(d.config)
    torch.testing.assert_close(_loop(ours, 10), _loop(ref, 10), rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ["DDPMScheduler", "DDIMScheduler", "EulerDiscreteScheduler",
                                  "EulerAncestralDiscreteScheduler", "HeunDiscreteScheduler",
                                  "DPMSolverMultistepScheduler"])
def test_add_noise_per_sample_timesteps(name):
    theirs, ours = getattr(diffusers, name)(), getattr(G, name)()
    theirs.set_timesteps(10)
    ours.set_timesteps(10)
    x0, noise = torch.randn(4, 3, 2, 2), torch.randn(4, 3, 2, 2)
    t = theirs.timesteps[[0, 3, 5, 9]]
    torch.testing.assert_close(ours.add_noise(x0, noise, t), theirs.add_noise(x0, noise, t))


def test_flow_scale_noise():
    theirs, ours = diffusers.FlowMatchEulerDiscreteScheduler(shift=2.0), G.FlowMatchEulerDiscreteScheduler(shift=2.0)
    theirs.set_timesteps(10)
    ours.set_timesteps(10)
    x0, noise = torch.randn(3, 4), torch.randn(3, 4)
    t = theirs.timesteps[[0, 4, 9]]
    torch.testing.assert_close(ours.scale_noise(x0, t, noise), theirs.scale_noise(x0, t, noise))


@pytest.mark.parametrize("name, step_kw", [("DDIMScheduler", {"eta": 0.5}), ("DDPMScheduler", {}),
                                           ("EulerDiscreteScheduler", {}), ("EulerAncestralDiscreteScheduler", {}),
                                           ("HeunDiscreteScheduler", {}), ("DPMSolverMultistepScheduler", {}),
                                           ("FlowMatchEulerDiscreteScheduler", {})])
def test_guided_step_equals_step_on_the_combined_output(name, step_kw):
    """guided_step(cat([uncond, cond]), ...) == diffusers' step(uncond + s (cond - uncond), ...)."""
    s = 6.5
    theirs, ours = getattr(diffusers, name)(), getattr(G, name)()
    for sch in (theirs, ours):
        sch.set_timesteps(6)
    x = torch.randn(3, D) * getattr(theirs, "init_noise_sigma", 1.0)
    xt, xo = x.clone(), x.clone()
    takes_gen = "generator" in inspect.signature(theirs.step).parameters
    gt, go = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    for i, t in enumerate(theirs.timesteps):
        both = torch.randn(6, D, generator=torch.Generator().manual_seed(i))
        u, c = both.chunk(2)
        xt = theirs.step(u + s * (c - u), t, xt, **({"generator": gt} if takes_gen else {}), **step_kw).prev_sample
        xo = ours.guided_step(both, t, xo, guidance_scale=s, **({"generator": go} if takes_gen else {}),
                              **step_kw).prev_sample
    assert (xo - xt).abs().max().item() <= 1e-4 * max(1.0, xt.abs().max().item())
    with pytest.raises(ValueError, match="stack"):
        ours.guided_step(torch.randn(3, D), ours.timesteps[-1], x, guidance_scale=s)


@pytest.mark.parametrize("name, step_kw", [("DDPMScheduler", {}), ("DDIMScheduler", {"eta": 1.0}),
                                           ("EulerAncestralDiscreteScheduler", {}),
                                           ("EulerDiscreteScheduler", {"s_churn": 1.0})])
def test_gencore_noise_is_batch_invariant(name, step_kw):
    def run(batch_slice, offset):
        sch = getattr(G, name)()
        sch.use_gencore_noise(11, sample_offset=offset)
        sch.set_timesteps(6)
        x = randn(12, D, seed=0)[batch_slice] * getattr(sch, "init_noise_sigma", 1.0)
        for t in sch.timesteps:
            out = _model(sch, "epsilon")(sch.scale_model_input(x, t), t.reshape(1).expand(x.shape[0]).double())
            x = sch.step(out.float(), t, x, **step_kw).prev_sample
        return x

    full = run(slice(0, 12), 0)
    part = run(slice(5, 9), 5)
    torch.testing.assert_close(part, full[5:9], rtol=1e-6, atol=1e-6)
    assert not torch.allclose(run(slice(0, 12), 1)[:4], full[:4])


@pytest.mark.parametrize("name, config, match", [
    ("DDPMScheduler", dict(thresholding=True), "thresholding"),
    ("DDPMScheduler", dict(variance_type="learned_range"), "variance_type"),
    ("DDPMScheduler", dict(beta_schedule="laplace"), "beta_schedule"),
    ("DDIMScheduler", dict(thresholding=True), "thresholding"),
    ("EulerDiscreteScheduler", dict(use_exponential_sigmas=True), "use_exponential_sigmas"),
    ("EulerDiscreteScheduler", dict(interpolation_type="log_linear"), "interpolation_type"),
    ("EulerDiscreteScheduler", dict(timestep_type="continuous", prediction_type="v_prediction"), "timestep_type"),
    ("HeunDiscreteScheduler", dict(beta_schedule="exp"), "beta_schedule"),
    ("HeunDiscreteScheduler", dict(use_beta_sigmas=True), "use_beta_sigmas"),
    ("DPMSolverMultistepScheduler", dict(algorithm_type="sde-dpmsolver++"), "algorithm_type"),
    ("DPMSolverMultistepScheduler", dict(solver_type="heun"), "solver_type"),
    ("DPMSolverMultistepScheduler", dict(solver_order=3), "solver_order"),
    ("DPMSolverMultistepScheduler", dict(use_lu_lambdas=True), "use_lu_lambdas"),
    ("DPMSolverMultistepScheduler", dict(thresholding=True), "thresholding"),
    ("FlowMatchEulerDiscreteScheduler", dict(invert_sigmas=True), "invert_sigmas"),
])
def test_unsupported_options_raise_naming_them(name, config, match):
    with pytest.raises(NotImplementedError, match=match):
        getattr(G, name)(**config)


def test_per_token_timesteps_unsupported():
    s = G.FlowMatchEulerDiscreteScheduler()
    s.set_timesteps(4)
    with pytest.raises(NotImplementedError, match="per_token_timesteps"):
        s.step(torch.zeros(1, 2), s.timesteps[0], torch.zeros(1, 2), per_token_timesteps=torch.ones(1))


def test_import_gencore_does_not_import_diffusers():
    code = ("import sys, gencore, gencore.diffusion, gencore.integrations, gencore.integrations.k_diffusion; "
            "assert 'diffusers' not in sys.modules, 'diffusers imported'")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**__import__("os").environ})
    assert res.returncode == 0, res.stderr
