"""Property-based fuzzing of the diffusion ops: every public step, ``affine_step`` and
``q_sample`` on random shapes, dtypes, layouts, non-finite values, garbage scalars and ``out=``
buffers. Each call equals the reference path (``GENCORE_FORCE_REFERENCE=1``; a float64 re-run
judges low precision) or raises a ``ValueError``/``TypeError`` naming an argument."""

from __future__ import annotations

import math

import pytest
import torch
from fuzzlib import Case, check, fuzz_settings, per_sample, realize, shapes, tensor_spec, to64_default
from hypothesis import given
from hypothesis import strategies as st
from strategies import build_step, chaos, coefficient, maybe, noise_args, other_tensor, step_tensors

import gencore.diffusion as gd
from gencore import _native
from gencore.diffusion import Coef, make_schedule

pytestmark = [
    pytest.mark.fuzz,
    pytest.mark.skipif(_native.lib() is None or _native.force_reference(),
                       reason="compares the native kernels with the reference: needs the extension"),
]

STEP_NAMES = ("sample", "model_output", "uncond_output", "guidance_scale", "prediction_type", "clip_sample",
              "noise", "seed", "stream", "sample_offset", "out", "out[0]", "out[1]", "out[2]", "x0", "t")
SCHEDULE = make_schedule("scaled_linear", 1000, 0.00085, 0.012)


def _noise_kwargs(noise, seed, stream, offset) -> dict:
    return {"noise": noise, "seed": seed, "stream": stream, "sample_offset": offset}


def _step_case(op, fn, names, draw_result, coefs, extra_kwargs, n_out=2):
    x, m, u, g, pred, clip, ex, out = draw_result
    kwargs = {"uncond_output": u, "guidance_scale": g, "prediction_type": pred, "clip_sample": clip,
              **ex, **extra_kwargs}
    return Case(op, fn, build_step((x, m, *coefs), kwargs, out, n_out), STEP_NAMES + names,
                to64=to64_default(0), out_arg=True, desc={"args": (x, m, *coefs), "kwargs": kwargs, "out": out})


def _sigmas(draw, batch, bad, hi=200.0):
    """(sigma, sigma_next): valid ones (sigma > 0, mostly sigma_next <= sigma) unless ``bad``."""
    sigma = draw(coefficient(batch, 0.0, hi, edges=(1e-8, 1.0, 14.6), bad=bad))
    sn = draw(coefficient(batch, 0.0, hi, edges=(0.0, 1e-8), bad=bad))
    if not bad and isinstance(sigma, float):
        if sigma == 0.0:
            sigma = 1e-3
        if isinstance(sn, float) and sn > sigma and draw(st.integers(0, 3)):
            sigma, sn = sn, sigma
        if hi < math.inf and sigma >= hi:
            sigma = 0.999 * hi
    return sigma, sn


def _alpha_prods(draw, batch, bad):
    """(alpha_prod_t, alpha_prod_t_prev): valid ones (a_t in (0, 1), a_p in (a_t, 1]) unless ``bad``."""
    a_t = draw(coefficient(batch, 0.0, 1.0, edges=(1e-12, 0.9999), bad=bad))
    a_p = draw(coefficient(batch, 0.0, 1.0, edges=(1e-12, 0.9999), bad=bad))
    if not bad and isinstance(a_t, float):
        a_t = min(max(a_t, 1e-6), 0.9999)
        if isinstance(a_p, float):
            a_p = max(a_p, a_t) if a_p > 0 else 1.0
    return a_t, a_p


@st.composite
def ddim_cases(draw):
    bad = draw(chaos())
    r = draw(step_tensors(bad=bad))
    b = r[0].shape[0]
    a_t, a_p = _alpha_prods(draw, b, bad)
    eta = draw(maybe(bad, st.sampled_from((0.0, 0.0, 0.5, 1.0, 3.0)), st.sampled_from((-1.0, math.nan, "1"))))
    noise, seed, stream, off = draw(noise_args(r[0].shape, r[0].dtype, bad)) if eta != 0.0 else (None, None, 0, 0)
    kw = {"eta": eta, "use_clipped_model_output": draw(st.booleans()), **_noise_kwargs(noise, seed, stream, off)}
    return _step_case("ddim_step", gd.ddim_step, ("alpha_prod_t", "alpha_prod_t_prev", "eta"), r, (a_t, a_p), kw)


@st.composite
def ddpm_cases(draw):
    bad = draw(chaos())
    r = draw(step_tensors(bad=bad))
    b = r[0].shape[0]
    a_t, a_p = _alpha_prods(draw, b, bad)
    add = draw(maybe(bad, st.sampled_from((True, True, False, "mask")), st.sampled_from(("badmask", 1))))
    if add == "mask":
        add = torch.tensor(draw(st.lists(st.booleans(), min_size=b, max_size=b)), dtype=torch.bool)
    elif add == "badmask":
        add = torch.ones(b + 1, dtype=torch.bool)
    noise, seed, stream, off = draw(noise_args(r[0].shape, r[0].dtype, bad))
    kw = {"variance_type": draw(maybe(bad, st.sampled_from(("fixed_small", "fixed_large")), st.just("learned"))),
          "add_noise": add, **_noise_kwargs(noise, seed, stream, off)}
    return _step_case("ddpm_step", gd.ddpm_step, ("alpha_prod_t", "alpha_prod_t_prev", "variance_type",
                                                  "add_noise"), r, (a_t, a_p), kw)


@st.composite
def euler_cases(draw):
    bad = draw(chaos())
    r = draw(step_tensors(bad=bad))
    sigma, sn = _sigmas(draw, r[0].shape[0], bad)
    churn = draw(maybe(bad, st.sampled_from((0.0, 0.0, 0.5, 40.0)), st.sampled_from((-1.0, math.nan))))
    noise, seed, stream, off = draw(noise_args(r[0].shape, r[0].dtype, bad))
    kw = {"s_churn": churn, "s_tmin": draw(maybe(bad, st.sampled_from((0.0, 0.05, 1.0)), st.just(math.nan))),
          "s_tmax": draw(maybe(bad, st.sampled_from((math.inf, 50.0, 2.0)), st.just("x"))),
          "s_noise": draw(maybe(bad, st.sampled_from((1.0, 1.003, 0.0)), st.just(None))),
          "num_steps": draw(maybe(bad, st.sampled_from((10, 1)), st.sampled_from((0, None, 2.5)))),
          **_noise_kwargs(noise, seed, stream, off)}
    return _step_case("euler_step", gd.euler_step, ("sigma", "sigma_next", "s_churn", "s_tmin", "s_tmax", "s_noise",
                                                    "num_steps"), r, (sigma, sn), kw)


@st.composite
def euler_ancestral_cases(draw):
    bad = draw(chaos())
    r = draw(step_tensors(bad=bad))
    sigma, sn = _sigmas(draw, r[0].shape[0], bad)
    noise, seed, stream, off = draw(noise_args(r[0].shape, r[0].dtype, bad))
    kw = {"eta": draw(maybe(bad, st.sampled_from((1.0, 0.0, 0.5)), st.sampled_from((-1.0, math.nan)))),
          "s_noise": draw(maybe(bad, st.sampled_from((1.0, 1.003, 0.0)), st.just("1"))),
          **_noise_kwargs(noise, seed, stream, off)}
    return _step_case("euler_ancestral_step", gd.euler_ancestral_step, ("sigma", "sigma_next", "eta", "s_noise"), r,
                      (sigma, sn), kw)


@st.composite
def heun_cases(draw):
    bad = draw(chaos())
    r = draw(step_tensors(extras=("derivative", "original_sample"), bad=bad))
    sigma, sn = _sigmas(draw, r[0].shape[0], bad)
    stage = draw(maybe(bad, st.sampled_from((1, 2)), st.sampled_from((0, 3, True))))
    ex = dict(r[6])
    if not bad and stage == 1:
        ex = {"derivative": None, "original_sample": None}
    elif not bad:
        ex = {k: v or draw(other_tensor(r[0].shape, r[0].dtype)) for k, v in ex.items()}
    r = (*r[:6], ex, r[7])
    return _step_case("heun_step", gd.heun_step, ("sigma", "sigma_next", "stage", "derivative", "original_sample"),
                      r, (sigma, sn), {"stage": stage}, n_out=3)


def _dpm_common(draw, r, bad: bool):
    b = r[0].shape[0]
    param = draw(maybe(bad, st.sampled_from(("vp", "vp", "ve", "flow")), st.just("bogus")))
    hi = 1.0 if param == "flow" else 200.0
    sigma, sn = _sigmas(draw, b, bad, hi)
    if r[6].get("prev_x0") is not None:
        sp = draw(coefficient(b, 0.0, hi, edges=(1e-8,), bad=bad))
        if not bad and isinstance(sp, float) and isinstance(sigma, float) and sp == sigma:
            sp = sigma / 2
    else:
        sp = draw(maybe(bad, st.just(None), st.just(0.5)))
    kw = {"sigma_prev": sp, "parameterization": param}
    return sigma, sn, kw


@st.composite
def dpmpp_2m_cases(draw):
    bad = draw(chaos())
    r = draw(step_tensors(extras=("prev_x0",), bad=bad))
    sigma, sn, kw = _dpm_common(draw, r, bad)
    kw["lower_order"] = draw(maybe(bad, st.sampled_from((False, False, True)), st.just(1)))
    return _step_case("dpmpp_2m_step", gd.dpmpp_2m_step, ("sigma", "sigma_next", "sigma_prev", "prev_x0",
                                                          "lower_order", "parameterization"), r, (sigma, sn), kw)


@st.composite
def dpmpp_2m_sde_cases(draw):
    bad = draw(chaos())
    r = draw(step_tensors(extras=("prev_x0",), bad=bad))
    sigma, sn, kw = _dpm_common(draw, r, bad)
    noise, seed, stream, off = draw(noise_args(r[0].shape, r[0].dtype, bad))
    kw.update(eta=draw(maybe(bad, st.sampled_from((1.0, 0.0, 0.5)), st.sampled_from((-1.0, math.nan)))),
              s_noise=draw(maybe(bad, st.sampled_from((1.0, 0.7)), st.just(None))),
              solver_type=draw(maybe(bad, st.sampled_from(("midpoint", "heun")), st.just("bogus"))),
              **_noise_kwargs(noise, seed, stream, off))
    return _step_case("dpmpp_2m_sde_step", gd.dpmpp_2m_sde_step, ("sigma", "sigma_next", "sigma_prev", "prev_x0",
                                                                  "eta", "s_noise", "solver_type",
                                                                  "parameterization"), r, (sigma, sn), kw)


@st.composite
def flow_match_cases(draw):
    bad = draw(chaos())
    r = draw(step_tensors(bad=bad))
    b = r[0].shape[0]
    sigma = draw(coefficient(b, 0.0, 1.0, edges=(1e-8, 0.999), bad=bad))
    sn = draw(coefficient(b, 0.0, 1.0, edges=(0.0,), bad=bad))
    if not bad and sigma == 0.0:
        sigma = 0.5
    if not bad and sigma == 1.0 and r[4] in ("epsilon", "v_prediction"):
        sigma = 0.999
    stochastic = draw(maybe(bad, st.sampled_from((False, False, True)), st.just(1)))
    noise, seed, stream, off = draw(noise_args(r[0].shape, r[0].dtype, bad))
    kw = {"stochastic": stochastic, **_noise_kwargs(noise, seed, stream, off)}
    return _step_case("flow_match_euler_step", gd.flow_match_euler_step, ("sigma", "sigma_next", "stochastic"), r,
                      (sigma, sn), kw)


COEF_VALUES = (0.0, 0.0, 0.0, 1.0, -0.5, 0.25, 3.0, 1e-3, 1e30, math.inf, math.nan, -2.0)


@st.composite
def affine_step_cases(draw):
    bad = draw(chaos())
    r = draw(step_tensors(extras=("h1", "h2", "h3", "h4", "h5"), bad=bad))
    x, m, u, g, _pred, clip, ex, out = r
    b = x.shape[0]
    fields = {}
    for name in Coef._fields:
        k = draw(st.integers(0, 40 if bad else 20))
        if k == 0 and b > 0:
            fields[name] = draw(per_sample(b, -3.0, 3.0, bad))
        elif k == 1 and bad:
            fields[name] = draw(st.sampled_from(("1", None, True, 1j)))
        else:
            fields[name] = draw(st.sampled_from(COEF_VALUES))
    n_hist = draw(st.integers(0, 5 if bad else 4))
    history = [ex[f"h{i + 1}"] or draw(other_tensor(x.shape, x.dtype)) for i in range(n_hist)]
    if bad and draw(st.integers(0, 10)) == 0:
        history = [*history[:1], "garbage"]
    want_aux = draw(st.booleans())
    noise, seed, stream, off = draw(noise_args(x.shape, x.dtype, bad)) if draw(st.booleans()) else (None, None, 0, 0)
    clip = draw(maybe(bad, st.sampled_from((None, None, None, 1.0, 1e30)), st.sampled_from((0.0, -1.0, math.nan))))

    def build_coef(fields=fields):
        return Coef(**realize(fields))

    spec_kwargs = {"uncond_output": u, "guidance_scale": g, "history": history, "clip": clip, "want_aux": want_aux,
                   **_noise_kwargs(noise, seed, stream, off)}
    inner = build_step((x, m), spec_kwargs, out, 3 if want_aux else 2)

    def build():
        args, kwargs = inner()
        return (build_coef(), *args), kwargs

    def fn(coef, x, m, **kw):
        return gd.affine_step(coef, x, m, **kw)

    def to64(args, kwargs, dtype=torch.float64):
        a, k = to64_default(0)(args[1:], kwargs, dtype)
        return (args[0], *a), k

    names = (*STEP_NAMES, "coef", "history", "clip", "want_aux", *tuple(f"history[{i}]" for i in range(5)))
    return Case("affine_step", fn, build, names, to64=to64, out_arg=True,
                desc={"coef": fields, "args": (x, m), "kwargs": spec_kwargs, "out": out})


@st.composite
def q_sample_cases(draw):
    bad = draw(chaos())
    shape = draw(shapes())
    dtype = draw(maybe(bad, st.sampled_from((torch.float16, torch.bfloat16, torch.float32, torch.float64)),
                       st.sampled_from((torch.int64, torch.bool))))
    x0 = draw(tensor_spec(shape, dtype))
    b = shape[0]
    t_kind = draw(st.integers(0, 12)) if bad else 12
    if t_kind == 0:
        t = torch.tensor([1.5] * b)
    elif t_kind == 1:
        t = torch.zeros(b + 1, dtype=torch.long)
    elif t_kind == 2:
        t = torch.full((b,), draw(st.sampled_from((-1, 1000, 2**40))), dtype=torch.long)
    elif t_kind == 3:
        t = [0] * b
    else:
        t = torch.randint(0, 1000, (b,), generator=torch.Generator().manual_seed(draw(st.integers(0, 99))),
                          dtype=draw(st.sampled_from((torch.long, torch.int32, torch.int16))))
    noise, seed, stream, off = draw(noise_args(shape, dtype, bad))
    if bad and draw(st.integers(0, 2)) == 0:  # a noise dtype other than x0's
        noise = draw(tensor_spec(shape, draw(st.sampled_from((torch.float16, torch.float32, torch.float64)))))
    schedule = SCHEDULE if not bad or draw(st.integers(0, 10)) else "linear"
    kwargs = {"noise": noise, "seed": seed, "stream": stream, "sample_offset": off}

    def build():
        tt = t.clone() if isinstance(t, torch.Tensor) else t
        return (realize(x0), tt, schedule), realize(kwargs)

    return Case("q_sample", gd.q_sample, build, ("x0", "t", "schedule", "noise", "seed", "stream", "sample_offset",
                                                "num_train_timesteps"), to64=to64_default(0),
                desc={"x0": x0, "t": t, "kwargs": kwargs})


@fuzz_settings(1.0)
@given(case=ddim_cases())
def test_fuzz_ddim_step(case):
    check(case)


@fuzz_settings(1.0)
@given(case=ddpm_cases())
def test_fuzz_ddpm_step(case):
    check(case)


@fuzz_settings(1.0)
@given(case=euler_cases())
def test_fuzz_euler_step(case):
    check(case)


@fuzz_settings(1.0)
@given(case=euler_ancestral_cases())
def test_fuzz_euler_ancestral_step(case):
    check(case)


@fuzz_settings(1.0)
@given(case=heun_cases())
def test_fuzz_heun_step(case):
    check(case)


@fuzz_settings(1.0)
@given(case=dpmpp_2m_cases())
def test_fuzz_dpmpp_2m_step(case):
    check(case)


@fuzz_settings(1.0)
@given(case=dpmpp_2m_sde_cases())
def test_fuzz_dpmpp_2m_sde_step(case):
    check(case)


@fuzz_settings(1.0)
@given(case=flow_match_cases())
def test_fuzz_flow_match_euler_step(case):
    check(case)


@fuzz_settings(1.0)
@given(case=affine_step_cases())
def test_fuzz_affine_step(case):
    check(case)


@fuzz_settings(1.0)
@given(case=q_sample_cases())
def test_fuzz_q_sample(case):
    check(case)

