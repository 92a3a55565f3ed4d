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
    ("DDPMScheduler", {"prediction_type": "v_prediction", "timestep_spacing": "trailing",
                       "variance_type": "fixed_large", "clip_sample": False}, {}),
    ("DDPMScheduler", {"beta_schedule": "sigmoid", "prediction_type": "sample", "timestep_spacing": "linspace"}, {}),
    ("DDPMScheduler", {"beta_schedule": "squaredcos_cap_v2", "variance_type": "fixed_small_log", "steps_offset": 1},
     {}),
    ("DDIMScheduler", {}, {}),
    ("DDIMScheduler", {"clip_sample": False, "timestep_spacing": "trailing"}, {"eta": 1.0}),
    ("DDIMScheduler", {"beta_schedule": "scaled_linear", "prediction_type": "v_prediction", "clip_sample": False,
                       "timestep_spacing": "trailing", "set_alpha_to_one": False}, {"eta": 0.5}),
    ("DDIMScheduler", {"beta_schedule": "squaredcos_cap_v2", "timestep_spacing": "linspace", "steps_offset": 1},
     {"eta": 0.3, "use_clipped_model_output": True}),
    ("EulerDiscreteScheduler", {}, {}),
    ("EulerDiscreteScheduler", {"use_karras_sigmas": True, "prediction_type": "v_prediction"}, {}),
    ("EulerDiscreteScheduler", {"timestep_spacing": "trailing", "beta_schedule": "scaled_linear"}, {"s_churn": 1.0}),
    ("EulerDiscreteScheduler", {"use_karras_sigmas": True}, {"s_churn": 1.0, "s_tmin": 0.5, "s_tmax": 5.0}),
    ("EulerDiscreteScheduler", {"timestep_spacing": "leading", "steps_offset": 1, "final_sigmas_type": "sigma_min",
                                "rescale_betas_zero_snr": True}, {}),
    ("EulerAncestralDiscreteScheduler", {}, {}),
    ("EulerAncestralDiscreteScheduler", {"timestep_spacing": "leading", "steps_offset": 1,
                                         "prediction_type": "v_prediction"}, {}),
    ("EulerAncestralDiscreteScheduler", {"timestep_spacing": "trailing", "beta_schedule": "squaredcos_cap_v2"}, {}),
    ("HeunDiscreteScheduler", {}, {}),
    ("HeunDiscreteScheduler", {"use_karras_sigmas": True, "beta_schedule": "scaled_linear"}, {}),
    ("HeunDiscreteScheduler", {"prediction_type": "v_prediction", "timestep_spacing": "trailing", "clip_sample": True,
                               "clip_sample_range": 3.0}, {}),
    ("DPMSolverMultistepScheduler", {}, {}),
    ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True, "timestep_spacing": "trailing"}, {}),
    ("DPMSolverMultistepScheduler", {"final_sigmas_type": "sigma_min", "prediction_type": "v_prediction",
                                     "lower_order_final": False}, {}),
    ("DPMSolverMultistepScheduler", {"timestep_spacing": "leading", "steps_offset": 1, "euler_at_final": True,
                                     "prediction_type": "sample", "lambda_min_clipped": -5.1}, {}),
    ("DPMSolverMultistepScheduler", {"solver_order": 1, "beta_schedule": "squaredcos_cap_v2"}, {}),
    ("DPMSolverMultistepScheduler", {"solver_type": "heun", "beta_schedule": "scaled_linear"}, {}),
    ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}, {}),
    ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": True,
                                     "beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012}, {}),
    ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "solver_type": "heun",
                                     "prediction_type": "v_prediction", "timestep_spacing": "trailing"}, {}),
    ("FlowMatchEulerDiscreteScheduler", {"shift": 3.0}, {}),
    ("FlowMatchEulerDiscreteScheduler", {"use_karras_sigmas": True}, {}),
    ("FlowMatchEulerDiscreteScheduler", {"shift_terminal": 0.1, "stochastic_sampling": True}, {}),
    ("FlowMatchEulerDiscreteScheduler", {"use_dynamic_shifting": True, "time_shift_type": "linear"},
     {"__set__": {"mu": 1.2}}),
]


@pytest.mark.parametrize("steps", [8, 20])
@pytest.mark.parametrize("name, config, step_kw", CONFIGS, ids=lambda v: v if isinstance(v, str) else None)
def test_loop_matches_diffusers(name, config, step_kw, steps):
    step_kw = dict(step_kw)
    set_kw = step_kw.pop("__set__", None)
    _assert_loops_match(lambda: getattr(G, name)(**config), getattr(diffusers, name)(**config), steps, set_kw,
                        **step_kw)


def _assert_loops_match(make_ours, theirs_sched, steps, set_kw=None, **step_kw):
    """Same loop, same generator noise: within 1e-5 of diffusers, or (only where diffusers' own
    float32 rounding exceeds that bound, e.g. dividing by alpha ~ 5e-5 at the cosine schedule's
    first step) at least as close as diffusers to the float64 run of the same loop (the project's
    low-precision criterion)."""
    theirs = _loop(theirs_sched, steps, set_kw=set_kw, **step_kw)
    ours = _loop(make_ours(), steps, set_kw=set_kw, **step_kw)
    assert torch.isfinite(ours).all()
    err = (ours - theirs).abs().max().item()
    if err > 1e-5:
        ours64 = _loop(make_ours(), steps, dtype=torch.float64, set_kw=set_kw, **step_kw)
        e_ours = (ours.double() - ours64).abs().max().item()
        e_theirs = (theirs.double() - ours64).abs().max().item()
        assert e_ours <= 2 * e_theirs + 1e-6, f"{err:.3g}; vs float64 {e_ours:.3g} / {e_theirs:.3g}"


@pytest.mark.parametrize("name, config, step_kw", [
    ("DDPMScheduler", {"clip_sample": False, "timestep_spacing": "trailing"}, {}),
    ("DDPMScheduler", {"prediction_type": "v_prediction", "variance_type": "fixed_large"}, {}),
    ("DDIMScheduler", {"clip_sample": False, "timestep_spacing": "trailing"}, {"eta": 0.0}),
    ("DDIMScheduler", {"prediction_type": "v_prediction", "set_alpha_to_one": False}, {"eta": 0.8}),
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
    ("DDPMScheduler", {"thresholding": True}, "thresholding"),
    ("DDPMScheduler", {"variance_type": "learned_range"}, "variance_type"),
    ("DDPMScheduler", {"variance_type": "fixed_large_log"}, "variance_type"),
    ("DDPMScheduler", {"beta_schedule": "laplace"}, "beta_schedule"),
    ("DDIMScheduler", {"thresholding": True}, "thresholding"),
    ("EulerDiscreteScheduler", {"use_exponential_sigmas": True}, "use_exponential_sigmas"),
    ("EulerDiscreteScheduler", {"interpolation_type": "log_linear"}, "interpolation_type"),
    ("EulerDiscreteScheduler", {"timestep_type": "continuous", "prediction_type": "v_prediction"}, "timestep_type"),
    ("HeunDiscreteScheduler", {"beta_schedule": "exp"}, "beta_schedule"),
    ("HeunDiscreteScheduler", {"use_beta_sigmas": True}, "use_beta_sigmas"),
    ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver", "final_sigmas_type": "sigma_min"},
     "algorithm_type"),
    ("DPMSolverMultistepScheduler", {"solver_order": 3}, "solver_order"),
    ("DPMSolverMultistepScheduler", {"use_lu_lambdas": True}, "use_lu_lambdas"),
    ("DPMSolverMultistepScheduler", {"thresholding": True}, "thresholding"),
    ("DPMSolverMultistepScheduler", {"prediction_type": "flow_prediction"}, "prediction_type"),
    ("FlowMatchEulerDiscreteScheduler", {"invert_sigmas": True}, "invert_sigmas"),
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
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                         env={**__import__("os").environ})
    assert res.returncode == 0, res.stderr


# ------------------------------------------------------------------------------------------------
# Configs moving between scheduler classes (pipelines swap schedulers with from_config)
# ------------------------------------------------------------------------------------------------

SD15_CONFIG = {"_class_name": "PNDMScheduler", "_diffusers_version": "0.6.0", "beta_end": 0.012,
               "beta_schedule": "scaled_linear", "beta_start": 0.00085, "num_train_timesteps": 1000,
               "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1, "trained_betas": None,
               "clip_sample": False}

SOURCES = [(name, {}) for name in NAMES] + [
    ("DDPMScheduler", {"variance_type": "fixed_large", "beta_schedule": "scaled_linear", "beta_start": 0.00085,
                       "beta_end": 0.012, "clip_sample": False, "prediction_type": "v_prediction",
                       "timestep_spacing": "trailing"}),
    ("DDIMScheduler", {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "clip_sample": False,
                       "set_alpha_to_one": False, "steps_offset": 1, "rescale_betas_zero_snr": True}),
    ("EulerDiscreteScheduler", {"use_karras_sigmas": True, "sigma_min": 0.05, "sigma_max": 12.0,
                                "timestep_type": "continuous", "final_sigmas_type": "sigma_min"}),
    ("HeunDiscreteScheduler", {"clip_sample": True, "clip_sample_range": 2.0, "use_karras_sigmas": True}),
    ("DPMSolverMultistepScheduler", {"algorithm_type": "deis", "solver_type": "bh2", "variance_type": "fixed_small",
                                     "final_sigmas_type": "sigma_min", "lambda_min_clipped": -5.1,
                                     "use_dynamic_shifting": True}),
    ("FlowMatchEulerDiscreteScheduler", {"shift": 3.0, "use_dynamic_shifting": True, "shift_terminal": 0.05}),
    ("PNDMScheduler", SD15_CONFIG),
]


def _file_config(lib, name, kw):
    """A config as a pipeline has it after loading a checkpoint: every key explicit
    (``_use_default_values`` is not saved, so ``from_config`` passes all of them on)."""
    if name not in NAMES:
        return dict(kw)
    return {k: v for k, v in dict(getattr(lib, name)(**kw).config).items() if k != "_use_default_values"}


def _same_config(ours, theirs):
    a, b = dict(ours), dict(theirs)
    assert set(a.pop("_use_default_values", [])) == set(b.pop("_use_default_values", []))
    assert a == b


@pytest.mark.parametrize("target", NAMES)
@pytest.mark.parametrize("source", range(len(SOURCES)), ids=lambda i: f"{SOURCES[i][0]}-{i}")
def test_from_config_of_another_class_as_diffusers(source, target):
    """``B.from_config(A(...).config)`` loads wherever diffusers' does, keeps the same config
    (another class's keys included, as diffusers keeps them) and samples the same."""
    name, kw = SOURCES[source]
    theirs_cfg, ours_cfg = _file_config(diffusers, name, kw), _file_config(G, name, kw)
    assert ours_cfg == theirs_cfg
    try:
        theirs = getattr(diffusers, target).from_config(theirs_cfg)
    except Exception as e:
        with pytest.raises(type(e)):
            getattr(G, target).from_config(ours_cfg)
        return
    ours = getattr(G, target).from_config(ours_cfg)
    assert type(ours) is getattr(G, target)
    _same_config(ours.config, theirs.config)
    set_kw = {"mu": 0.8} if target == "FlowMatchEulerDiscreteScheduler" and ours.config.use_dynamic_shifting else None
    if target == "FlowMatchEulerDiscreteScheduler" and ours.config.get("sigma_max", 1.0) is not None \
            and ours.config.get("sigma_max", 1.0) > 1 and ours.config.use_karras_sigmas:
        # Karras flow sigmas up to another class's sigma_max > 1: the same grid, which diffusers
        # integrates and gencore's flow-matching step refuses (sigma must lie in (0, 1]).
        theirs.set_timesteps(8)
        ours.set_timesteps(8)
        assert torch.equal(ours.sigmas, theirs.sigmas) and torch.equal(ours.timesteps, theirs.timesteps)
        with pytest.raises(ValueError, match="sigma"):
            ours.step(torch.zeros(1, D), ours.timesteps[0], torch.zeros(1, D))
        return
    _assert_loops_match(lambda: getattr(G, target).from_config(ours_cfg), theirs, 8, set_kw)


def test_dpm_solver_from_ddpm_config_and_ddpm_from_dpm_solver_config():
    ddpm = G.DDPMScheduler(variance_type="fixed_small", beta_schedule="scaled_linear", beta_start=0.00085,
                           beta_end=0.012)
    dpm = G.DPMSolverMultistepScheduler.from_config(ddpm.config)
    assert dpm.config.variance_type == "fixed_small" and dpm.config.beta_schedule == "scaled_linear"
    back = G.DDPMScheduler.from_config(G.DPMSolverMultistepScheduler(variance_type=None).config)
    assert back.config.variance_type is None and back.variance_type is None


@pytest.mark.parametrize("variance_type", [None, "fixed_small_log", "learned_rnage"])
def test_ddpm_variance_types_diffusers_reads_as_fixed_small(variance_type):
    _assert_loops_match(lambda: G.DDPMScheduler(variance_type=variance_type),
                        diffusers.DDPMScheduler(variance_type=variance_type), 10)
    torch.testing.assert_close(_loop(G.DDPMScheduler(variance_type=variance_type), 10),
                               _loop(G.DDPMScheduler(variance_type="fixed_small"), 10), rtol=0, atol=0)


@pytest.mark.parametrize("variance_type", ["learned", "learned_range"])
def test_dpm_solver_learned_variance_keeps_the_mean_channels(variance_type):
    """diffusers' DPM-Solver++ keeps channels :3 of an epsilon prediction with a learned variance."""
    theirs = diffusers.DPMSolverMultistepScheduler(variance_type=variance_type)
    ours = G.DPMSolverMultistepScheduler(variance_type=variance_type)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 4, 4, generator=g)
    outs = [torch.randn(2, 6, 4, 4, generator=g) for _ in range(6)]
    xt, xo = x.clone(), x.clone()
    for sch in (theirs, ours):
        sch.set_timesteps(6)
    for t, out in zip(theirs.timesteps, outs):
        xt = theirs.step(out, t, xt).prev_sample
        xo = ours.step(out, t, xo).prev_sample
    torch.testing.assert_close(xo, xt, rtol=1e-5, atol=1e-5)


def test_euler_timestep_type_without_v_prediction_is_ignored():
    _assert_loops_match(lambda: G.EulerDiscreteScheduler(timestep_type="continuous"),
                        diffusers.EulerDiscreteScheduler(timestep_type="continuous"), 10)


def test_dpm_solver_dynamic_shifting_without_mu_is_ignored():
    _assert_loops_match(lambda: G.DPMSolverMultistepScheduler(use_dynamic_shifting=True),
                        diffusers.DPMSolverMultistepScheduler(use_dynamic_shifting=True), 10)


def _stage(lib, name, config):
    """Where a scheduler made from ``config`` fails: ``(stage, exception type)``, or ``None``."""
    try:
        sch = getattr(lib, name)(**config)
    except Exception as e:
        return "init", type(e)
    try:
        sch.set_timesteps(4)
    except Exception as e:
        return "set_timesteps", type(e)
    try:
        x = torch.zeros(1, 2)
        sch.step(torch.zeros(1, 2), sch.timesteps[0], x)
    except Exception as e:
        return "step", type(e)
    return None


@pytest.mark.parametrize("name, config", [
    ("DDPMScheduler", {"prediction_type": "flow_prediction"}),
    ("DDPMScheduler", {"timestep_spacing": "uniform"}),
    ("DDPMScheduler", {"beta_schedule": "exp"}),
    ("DDIMScheduler", {"prediction_type": "original_sample"}),
    ("DDIMScheduler", {"beta_schedule": "sigmoid"}),
    ("EulerDiscreteScheduler", {"prediction_type": "bogus"}),
    ("EulerDiscreteScheduler", {"interpolation_type": "cubic"}),
    ("EulerDiscreteScheduler", {"final_sigmas_type": "denoise_to_zero"}),
    ("EulerDiscreteScheduler", {"use_karras_sigmas": True, "use_beta_sigmas": True}),
    ("EulerAncestralDiscreteScheduler", {"prediction_type": "original_sample"}),
    ("HeunDiscreteScheduler", {"prediction_type": "bogus"}),
    ("HeunDiscreteScheduler", {"timestep_spacing": "uniform"}),
    ("DPMSolverMultistepScheduler", {"prediction_type": "original_sample"}),
    ("DPMSolverMultistepScheduler", {"final_sigmas_type": "denoise_to_zero"}),
    ("DPMSolverMultistepScheduler", {"algorithm_type": "unipc"}),
    ("DPMSolverMultistepScheduler", {"algorithm_type": "deis"}),
    ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver"}),
    ("FlowMatchEulerDiscreteScheduler", {"time_shift_type": "cubic"}),
    ("FlowMatchEulerDiscreteScheduler", {"use_karras_sigmas": True, "use_exponential_sigmas": True}),
])
def test_invalid_values_fail_where_diffusers_fails(name, config):
    theirs = _stage(diffusers, name, config)
    assert theirs is not None
    assert _stage(G, name, config) == theirs
