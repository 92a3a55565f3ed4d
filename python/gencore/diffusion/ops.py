"""Custom ops of the diffusion family and their dispatch: native kernels or the reference.

Each public step (``gencore.diffusion.steps``) is folded here into the 14 affine coefficients
of ``csrc/diffusion/diffusion_math.h`` (Python floats computed in float64 on the host, or a
float64 (batch, 14) tensor on the device for per-sample coefficients) and run by one fused
kernel: ``gencore::diffusion_step``. ``gencore::q_sample`` is the forward noising op, with an
autograd formula (grad_x0 = sqrt(abar_t) g, grad_noise = sqrt(1 - abar_t) g).

Ops are registered with ``torch.library.custom_op`` (schema from the signature, fake impl next
to it) and used under ``torch.compile``. In eager mode the steps call the same implementation
function directly, skipping the dispatcher (tens of microseconds on tiny tensors); results are
identical because it is the same function.
"""

from __future__ import annotations

import torch

from gencore import _native
from gencore.diffusion import reference
from gencore.diffusion.reference import _expm1, _log, _max0, _sqrt, _t, space_coeffs
from gencore.rng import from_signed64, to_signed64

__all__ = ["NUM_COEF", "diffusion_step", "q_sample_op", "step_impl"]

NUM_COEF = 14
_NO_NOISE, _EXPLICIT, _PHILOX = 0, 1, 2


# ---------------------------------------------------------------- the ops

def _step_impl(sample, model_output, uncond, noise, e1, e2, rows, coef, guidance, clip, noise_mode, want_aux,
               seed, stream, sample_offset):
    prev, x0, aux = _step_core(sample, model_output, uncond, noise, e1, e2, rows, coef, guidance, clip, noise_mode,
                               want_aux, seed, stream, sample_offset)
    return prev, x0, (aux if want_aux else sample.new_empty((0,)))


def _step_core(sample, model_output, uncond, noise, e1, e2, rows, coef, guidance, clip, noise_mode, want_aux,
               seed, stream, sample_offset, out=None):
    """The kernel call; returns (prev, x0, aux or None), written into ``out`` when given."""
    x = sample.contiguous()
    if out is None:
        prev = torch.empty_like(x, memory_format=torch.contiguous_format)
        x0 = torch.empty_like(prev)
        aux = torch.empty_like(prev) if want_aux else None
    else:
        prev, x0 = out[0], out[1]
        aux = out[2] if want_aux else None
    n = x.shape[0]
    if x.numel() == 0:
        return prev, x0, aux
    cont = [None if t is None else t.contiguous() for t in (model_output, uncond, noise, e1, e2, rows)]
    c, u, z, a1, a2, r = cont
    p = _native.ptr
    _native.lib().diffusion_step(
        p(x), p(c), p(u), p(z), p(a1), p(a2), p(prev), p(x0), p(aux), p(r), coef,
        guidance, clip, noise_mode, n, x.numel() // n, from_signed64(seed), stream, from_signed64(sample_offset),
        _native.dtype_code(x.dtype), _native.device_index(x), _native.cuda_stream(x), _native.threads(),
    )
    return prev, x0, aux


@torch.library.custom_op("gencore::diffusion_step", mutates_args=())
def diffusion_step(
    sample: torch.Tensor,
    model_output: torch.Tensor,
    uncond: torch.Tensor | None,
    noise: torch.Tensor | None,
    e1: torch.Tensor | None,
    e2: torch.Tensor | None,
    rows: torch.Tensor | None,
    coef: list[float],
    guidance: float,
    clip: float,
    noise_mode: int,
    want_aux: bool,
    seed: int,
    stream: int,
    sample_offset: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The fused step kernel: (prev_sample, pred_original_sample, aux) for the affine
    coefficients ``coef`` (14 floats) or per-sample ``rows`` (batch, 14) float64."""
    return _step_impl(sample, model_output, uncond, noise, e1, e2, rows, coef, guidance, clip, noise_mode,
                      want_aux, seed, stream, sample_offset)


@diffusion_step.register_fake
def _(sample, model_output, uncond, noise, e1, e2, rows, coef, guidance, clip, noise_mode, want_aux, seed, stream,
      sample_offset):
    prev = torch.empty_like(sample, memory_format=torch.contiguous_format)
    aux = torch.empty_like(prev) if want_aux else sample.new_empty((0,))
    return prev, torch.empty_like(prev), aux


def _q_sample_impl(x0, ab, noise, seed, stream, sample_offset):
    x = x0.contiguous()
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    z_out = torch.empty_like(out) if noise is None else x.new_empty((0,))
    if x.numel() == 0:
        return out, z_out
    z = None if noise is None else noise.contiguous()
    p = _native.ptr
    n = x.shape[0]
    _native.lib().diffusion_q_sample(
        p(x), p(z), p(ab.contiguous()), p(out), p(z_out if noise is None else None), n, x.numel() // n,
        from_signed64(seed), stream, from_signed64(sample_offset), _native.dtype_code(x.dtype),
        _native.device_index(x), _native.cuda_stream(x), _native.threads(),
    )
    return out, z_out


@torch.library.custom_op("gencore::q_sample", mutates_args=())
def q_sample_op(x0: torch.Tensor, ab: torch.Tensor, noise: torch.Tensor | None, seed: int, stream: int,
                sample_offset: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x_t = ab[:, 0] x0 + ab[:, 1] z per sample; returns (x_t, z) where z is the drawn noise
    (an empty tensor when ``noise`` is given)."""
    return _q_sample_impl(x0, ab, noise, seed, stream, sample_offset)


@q_sample_op.register_fake
def _(x0, ab, noise, seed, stream, sample_offset):
    out = torch.empty_like(x0, memory_format=torch.contiguous_format)
    return out, (torch.empty_like(out) if noise is None else x0.new_empty((0,)))


def _q_setup(ctx, inputs, output):
    x0, ab, noise = inputs[0], inputs[1], inputs[2]
    ctx.save_for_backward(ab)
    ctx.has_noise = noise is not None
    ctx.x0_dtype = x0.dtype
    ctx.noise_dtype = None if noise is None else noise.dtype


def _q_backward(ctx, g_out, g_z):
    (ab,) = ctx.saved_tensors
    acc = reference.acc_dtype(g_out.dtype)
    shape = (-1,) + (1,) * (g_out.dim() - 1)
    g = g_out.to(acc)
    grad_x0 = (g * ab[:, 0].to(acc).reshape(shape)).to(ctx.x0_dtype)
    grad_noise = (g * ab[:, 1].to(acc).reshape(shape)).to(ctx.noise_dtype) if ctx.has_noise else None
    return grad_x0, None, grad_noise, None, None, None


q_sample_op.register_autograd(_q_backward, setup_context=_q_setup)


# ---------------------------------------------------------------- coefficients

def _x0_lin(pred: str, a, st):
    """(ax, am) with x0 = ax x + am m (see reference.x0_from_output)."""
    if pred == "epsilon":
        return 1.0 / a, -st / a
    if pred == "sample":
        return 0.0, 1.0
    if pred == "v_prediction":
        # abar / a and sqrt(1 - abar) with abar = a^2 / (a^2 + st^2); no division by a, so a
        # zero-terminal-SNR step (a = 0) gives x0 = -v as diffusers does.
        n2 = a * a + st * st
        return a / n2, -st / _sqrt(n2)
    return 1.0 / (a + st), -st / (a + st)


def _zeros():
    return dict.fromkeys(("kpre", "ax", "am", "ex", "em", "e0", "px", "p0", "pe", "pz", "p1", "p2", "qe", "q1"), 0.0)


_ORDER = ("kpre", "ax", "am", "ex", "em", "e0", "px", "p0", "pe", "pz", "p1", "p2", "qe", "q1")


def _pack(k: dict, sample: torch.Tensor):
    """(rows, coef): per-sample rows (batch, 14) float64 when any coefficient is a tensor."""
    vals = [k[name] for name in _ORDER]
    if not any(isinstance(v, torch.Tensor) for v in vals):
        return None, vals
    n = sample.shape[0]
    cols = [v.to(torch.float64).expand(n) if _t(v) else torch.full((n,), float(v), dtype=torch.float64,
                                                                    device=sample.device) for v in vals]
    return torch.stack(cols, dim=1).contiguous(), [0.0] * NUM_COEF


def _noise_mode(needed: bool, noise, seed):
    if not needed:
        return _NO_NOISE, None, 0
    if noise is not None:
        return _EXPLICIT, noise, 0
    return _PHILOX, None, to_signed64(int(seed))


def _run(sample, model_output, k, *, uncond_output, guidance_scale, clip_sample, needs_noise=False, noise=None,
         seed=None, stream=0, sample_offset=0, e1=None, e2=None, want_aux=False, out=None):
    rows, coef = _pack(k, sample)
    mode, z, seed64 = _noise_mode(needs_noise, noise, seed)
    clip = 0.0 if clip_sample is None else float(clip_sample)
    g = float(guidance_scale) if uncond_output is not None else 1.0
    args = (sample, model_output, uncond_output, z, e1, e2, rows, coef, g, clip, mode, want_aux, seed64,
            int(stream), to_signed64(int(sample_offset)))
    if torch.compiler.is_compiling():
        res = diffusion_step(*args)
        res = res if want_aux else res[:2]
        if out is None:
            return res
        for o, r in zip(out, res):
            o.copy_(r)
        return out
    prev, x0, aux = _step_core(*args, out=out)
    return (prev, x0, aux) if want_aux else (prev, x0)


# ---------------------------------------------------------------- native versions of the steps

def _ddim(sample, model_output, alpha_prod_t, alpha_prod_t_prev, *, eta, uncond_output, guidance_scale,
          prediction_type, clip_sample, use_clipped_model_output, noise, seed, stream, sample_offset, out=None):
    at, ap = alpha_prod_t, alpha_prod_t_prev
    sa, sb = _sqrt(at), _sqrt(1.0 - at)
    k = _zeros()
    k["ax"], k["am"] = _x0_lin(prediction_type, sa, sb)
    if clip_sample is not None and use_clipped_model_output:
        k["ex"], k["e0"] = 1.0 / sb, -sa / sb
    elif prediction_type == "epsilon":
        k["em"] = 1.0
    elif prediction_type == "v_prediction":
        k["ex"], k["em"] = sb, sa
    else:  # eps from the unclipped x0 = ax x + am m
        k["ex"], k["em"] = (1.0 - sa * k["ax"]) / sb, -sa * k["am"] / sb
    variance = (1.0 - ap) / (1.0 - at) * (1.0 - at / ap)
    std = eta * _sqrt(variance)
    k["p0"] = _sqrt(ap)
    k["pe"] = _sqrt(_max0(1.0 - ap - std * std))
    if eta > 0:
        k["pz"] = std
    return _run(sample, model_output, k, out=out, uncond_output=uncond_output, guidance_scale=guidance_scale,
                clip_sample=clip_sample, needs_noise=eta > 0, noise=noise, seed=seed, stream=stream,
                sample_offset=sample_offset)


def _ddpm(sample, model_output, alpha_prod_t, alpha_prod_t_prev, *, variance_type, uncond_output, guidance_scale,
          prediction_type, clip_sample, add_noise, noise, seed, stream, sample_offset, out=None):
    at, ap = alpha_prod_t, alpha_prod_t_prev
    k = _zeros()
    k["ax"], k["am"] = _x0_lin(prediction_type, _sqrt(at), _sqrt(1.0 - at))
    bt, bp = 1.0 - at, 1.0 - ap
    cur_a = at / ap
    cur_b = 1.0 - cur_a
    k["p0"] = _sqrt(ap) * cur_b / bt
    k["px"] = _sqrt(cur_a) * bp / bt
    needed = add_noise is not False
    if needed:
        if variance_type == "fixed_small":
            var = bp / bt * cur_b
            var = var.clamp_min(1e-20) if _t(var) else max(var, 1e-20)
        else:
            var = cur_b
        std = _sqrt(var)
        if _t(add_noise):
            std = std * add_noise.to(torch.float64)
        k["pz"] = std
    return _run(sample, model_output, k, out=out, uncond_output=uncond_output, guidance_scale=guidance_scale,
                clip_sample=clip_sample, needs_noise=needed, noise=noise, seed=seed, stream=stream,
                sample_offset=sample_offset)


def _ve_x0(k, pred, sigma_eps, sigma_v):
    k["ax"], k["am"] = _x0_lin(pred, 1.0, sigma_v if pred == "v_prediction" else sigma_eps)


def _euler(sample, model_output, sigma, sigma_next, *, uncond_output, guidance_scale, prediction_type, clip_sample,
           s_churn, s_tmin, s_tmax, s_noise, num_steps, noise, seed, stream, sample_offset, out=None):
    gamma0 = min(s_churn / num_steps, 2**0.5 - 1) if s_churn > 0 else 0.0
    if _t(sigma):
        gamma = torch.where((sigma >= s_tmin) & (sigma <= s_tmax), gamma0, 0.0)
    else:
        gamma = gamma0 if s_tmin <= sigma <= s_tmax else 0.0
    sh = sigma * (gamma + 1.0)
    k = _zeros()
    if gamma0 > 0:
        k["kpre"] = s_noise * _sqrt(_max0(sh * sh - sigma * sigma))
    _ve_x0(k, prediction_type, sh, sigma)
    k["ex"], k["e0"] = 1.0 / sh, -1.0 / sh
    k["px"], k["pe"] = 1.0, sigma_next - sh
    return _run(sample, model_output, k, out=out, uncond_output=uncond_output, guidance_scale=guidance_scale,
                clip_sample=clip_sample, needs_noise=gamma0 > 0, noise=noise, seed=seed, stream=stream,
                sample_offset=sample_offset)


def _euler_ancestral(sample, model_output, sigma, sigma_next, *, eta, s_noise, uncond_output, guidance_scale,
                     prediction_type, clip_sample, noise, seed, stream, sample_offset, out=None):
    down, up = reference.ancestral_sigmas(sigma, sigma_next, eta)
    k = _zeros()
    _ve_x0(k, prediction_type, sigma, sigma)
    k["ex"], k["e0"] = 1.0 / sigma, -1.0 / sigma
    k["px"], k["pe"] = 1.0, down - sigma
    needed = eta > 0 and (_t(up) or up > 0)
    if needed:
        k["pz"] = up * s_noise
    return _run(sample, model_output, k, out=out, uncond_output=uncond_output, guidance_scale=guidance_scale,
                clip_sample=clip_sample, needs_noise=needed, noise=noise, seed=seed, stream=stream,
                sample_offset=sample_offset)


def _heun(sample, model_output, sigma, sigma_next, *, stage, derivative, original_sample, uncond_output,
          guidance_scale, prediction_type, clip_sample, out=None):
    s_in = sigma if stage == 1 else sigma_next
    dt = sigma_next - sigma
    k = _zeros()
    _ve_x0(k, prediction_type, s_in, s_in)
    k["ex"], k["e0"] = 1.0 / s_in, -1.0 / s_in
    if stage == 1:
        k["px"], k["pe"], k["qe"] = 1.0, dt, 1.0
        return _run(sample, model_output, k, out=out, uncond_output=uncond_output, guidance_scale=guidance_scale,
                    clip_sample=clip_sample, want_aux=True)
    k["p2"], k["pe"], k["p1"] = 1.0, 0.5 * dt, 0.5 * dt
    k["qe"], k["q1"] = 0.5, 0.5
    return _run(sample, model_output, k, out=out, uncond_output=uncond_output, guidance_scale=guidance_scale,
                clip_sample=clip_sample, e1=derivative, e2=original_sample, want_aux=True)


def _dpmpp_2m(sample, model_output, sigma, sigma_next, *, prev_x0, sigma_prev, lower_order, parameterization,
              uncond_output, guidance_scale, prediction_type, clip_sample, out=None):
    a_s, st_s = space_coeffs(sigma, parameterization)
    k = _zeros()
    k["ax"], k["am"] = _x0_lin(prediction_type, a_s, st_s)
    second = prev_x0 is not None and not lower_order
    if not _t(sigma_next) and sigma_next == 0:
        k["p0"] = 1.0
        return _run(sample, model_output, k, out=out, uncond_output=uncond_output, guidance_scale=guidance_scale,
                    clip_sample=clip_sample)
    a_t, st_t = space_coeffs(sigma_next, parameterization)
    lam_s = _log(a_s) - _log(st_s)
    lam_t = _log(a_t) - _log(st_t)
    h = lam_t - lam_s
    cx = st_t / st_s
    cd = -a_t * _expm1(-h)
    if second:
        a_p, st_p = space_coeffs(sigma_prev, parameterization)
        r0 = (lam_s - (_log(a_p) - _log(st_p))) / h
        p0, p1 = cd * (1.0 + 0.5 / r0), -cd * 0.5 / r0
    else:
        p0, p1 = cd, 0.0
    if _t(sigma_next):  # per-sample: a zero final level lands on x0
        last = sigma_next == 0
        cx = torch.where(last, 0.0, cx) if _t(cx) else torch.where(last, 0.0, torch.full_like(sigma_next, cx))
        p0 = torch.where(last, 1.0, p0) if _t(p0) else torch.where(last, 1.0, torch.full_like(sigma_next, p0))
        if second:
            p1 = torch.where(last, 0.0, p1) if _t(p1) else torch.where(last, 0.0, torch.full_like(sigma_next, p1))
    k["px"], k["p0"], k["p1"] = cx, p0, p1
    return _run(sample, model_output, k, out=out, uncond_output=uncond_output, guidance_scale=guidance_scale,
                clip_sample=clip_sample, e1=prev_x0 if second else None)


def _flow(sample, model_output, sigma, sigma_next, *, uncond_output, guidance_scale, prediction_type, clip_sample,
          stochastic, noise, seed, stream, sample_offset, out=None):
    k = _zeros()
    k["ax"], k["am"] = _x0_lin(prediction_type, 1.0 - sigma, sigma)
    if clip_sample is not None or prediction_type in ("sample", "v_prediction"):
        k["ex"], k["e0"] = 1.0 / sigma, -1.0 / sigma
    elif prediction_type == "flow":
        k["em"] = 1.0
    else:  # epsilon: u = eps - x0
        k["em"], k["e0"] = 1.0, -1.0
    if stochastic:
        k["p0"], k["pz"] = 1.0 - sigma_next, sigma_next
    else:
        k["px"], k["pe"] = 1.0, sigma_next - sigma
    return _run(sample, model_output, k, out=out, uncond_output=uncond_output, guidance_scale=guidance_scale,
                clip_sample=clip_sample, needs_noise=stochastic, noise=noise, seed=seed, stream=stream,
                sample_offset=sample_offset)


def _q_sample(x0, t, schedule, *, noise, seed, stream, sample_offset):
    tabs = schedule.on(x0.device)
    t = t.long()
    ab = torch.stack((tabs["sqrt_alphas_cumprod"][t], tabs["sqrt_one_minus_alphas_cumprod"][t]), dim=1)
    args = (x0, ab, noise, to_signed64(int(seed)) if noise is None else 0, int(stream),
            to_signed64(int(sample_offset)))
    needs_grad = torch.is_grad_enabled() and (x0.requires_grad or (noise is not None and noise.requires_grad))
    if needs_grad or torch.compiler.is_compiling():
        xt, z = q_sample_op(*args)
    else:
        xt, z = _q_sample_impl(*args)
    return xt, (noise if noise is not None else z)


_NATIVE = {
    "ddim": _ddim,
    "ddpm": _ddpm,
    "euler": _euler,
    "euler_ancestral": _euler_ancestral,
    "heun": _heun,
    "dpmpp_2m": _dpmpp_2m,
    "flow_match_euler": _flow,
    "q_sample": _q_sample,
}

_REFERENCE = {
    "ddim": reference.ddim_step,
    "ddpm": reference.ddpm_step,
    "euler": reference.euler_step,
    "euler_ancestral": reference.euler_ancestral_step,
    "heun": reference.heun_step,
    "dpmpp_2m": reference.dpmpp_2m_step,
    "flow_match_euler": reference.flow_match_euler_step,
    "q_sample": reference.q_sample,
}


_STEPS_NATIVE = [True]


class reference_steps:
    """Context manager: the step functions run their reference twins while noise is still
    drawn by ``gencore.randn`` (native when available). Benchmarks use it to time the eager
    step math alone (``GENCORE_FORCE_REFERENCE=1`` also makes the noise pure PyTorch)."""

    def __enter__(self):
        _STEPS_NATIVE[0] = False
        return self

    def __exit__(self, *exc):
        _STEPS_NATIVE[0] = True
        return False


def _dispatcher(name: str):
    native, ref = _NATIVE[name], _REFERENCE[name]

    def run(first, *args, out=None, **kwargs):
        if _STEPS_NATIVE[0] and _native.use_native(first):
            if out is None:
                return native(first, *args, **kwargs)
            return native(first, *args, out=out, **kwargs)
        res = ref(first, *args, **kwargs)
        if out is None:
            return res
        for o, r in zip(out, res):
            o.copy_(r)
        return out

    run.__name__ = f"{name}_dispatch"
    return run


_DISPATCH = {name: _dispatcher(name) for name in _NATIVE}


def step_impl(name: str):
    """The implementation of op ``name``: native when the extension is loaded and supports the
    tensors' device and dtype (and ``GENCORE_FORCE_REFERENCE`` is not set), else the reference."""
    return _DISPATCH[name]
