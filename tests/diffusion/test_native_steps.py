"""Native fused kernels against the reference path: fresh random inputs, every step, every
prediction type, float64 tightly and low precision against a float64 reference; per-sample
coefficients, the noise contract, non-contiguous and empty inputs, bad input, opcheck and
torch.compile."""

from __future__ import annotations

import pytest
import term_oracle
import torch

import gencore
import gencore.diffusion as gd
from _util import assert_close_to_ref
from gencore.diffusion import (
    ddim_step,
    ddpm_step,
    dpmpp_2m_step,
    euler_ancestral_step,
    euler_step,
    heun_step,
    make_schedule,
    ops,
    q_sample,
)

pytestmark = pytest.mark.skipif(not gencore.info()["cpu_native"], reason="native extension not built")

SCHED = make_schedule("scaled_linear", 1000, 0.00085, 0.012)
SHAPE = (3, 2, 5, 7)  # 70 elements per sample: crosses 4-element noise blocks
PREDS = ["epsilon", "v_prediction", "sample", "flow"]


def _coefs(kind: str, per_sample: bool, device):
    """Step scalars for three samples, as floats (sample 0's) or (3,) tensors."""
    ts = [700, 400, 37]
    a_t = [SCHED.alpha_prod(t) for t in ts]
    a_p = [SCHED.alpha_prod(t - 60) for t in ts]
    sig = [float(SCHED.sigmas[t]) for t in ts]
    sn = [float(SCHED.sigmas[max(t - 60, 0)]) for t in ts]
    sp = [float(SCHED.sigmas[t + 60]) for t in ts]
    fl = [0.9, 0.55, 0.2]
    fn = [0.7, 0.3, 0.0]
    table = {"at": a_t, "ap": a_p, "sig": sig, "sn": sn, "sp": sp, "fl": fl, "fn": fn}
    if per_sample:
        return {k: torch.tensor(v, dtype=torch.float64, device=device) for k, v in table.items()}
    return {k: v[0] for k, v in table.items()}


def _call(kind, x, m, co, extra, steps=gd, **kw):
    """Run step ``kind`` of ``steps`` (gencore.diffusion, or the term-by-term oracle); ``extra``
    holds the additional tensors (noise, derivative, ...)."""
    if kind == "ddim":
        return steps.ddim_step(x, m, co["at"], co["ap"], eta=0.6, noise=extra.get("noise"), seed=extra.get("seed"),
                         stream=3, **kw)
    if kind == "ddim_clip":
        return steps.ddim_step(x, m, co["at"], co["ap"], clip_sample=1.5, use_clipped_model_output=True, **kw)
    if kind == "ddpm":
        return steps.ddpm_step(x, m, co["at"], co["ap"], noise=extra.get("noise"), seed=extra.get("seed"), stream=3,
                               **kw)
    if kind == "ddpm_large":
        return steps.ddpm_step(x, m, co["at"], co["ap"], variance_type="fixed_large", clip_sample=2.0,
                         noise=extra.get("noise"), seed=extra.get("seed"), stream=3, **kw)
    if kind == "euler":
        return steps.euler_step(x, m, co["sig"], co["sn"], s_churn=3.0, s_tmin=0.1, s_tmax=50.0, num_steps=10,
                          noise=extra.get("noise"), seed=extra.get("seed"), stream=3, **kw)
    if kind == "euler_ancestral":
        return steps.euler_ancestral_step(x, m, co["sig"], co["sn"], eta=0.8, s_noise=1.1, noise=extra.get("noise"),
                                    seed=extra.get("seed"), stream=3, **kw)
    if kind == "heun1":
        return steps.heun_step(x, m, co["sig"], co["sn"], **kw)
    if kind == "heun2":
        return steps.heun_step(x, m, co["sig"], co["sn"], stage=2, derivative=extra["e1"], original_sample=extra["e2"],
                         **kw)
    if kind == "dpmpp_2m_first":
        return steps.dpmpp_2m_step(x, m, co["sig"], co["sn"], **kw)
    if kind == "dpmpp_2m":
        return steps.dpmpp_2m_step(x, m, co["sig"], co["sn"], prev_x0=extra["e1"], sigma_prev=co["sp"], **kw)
    if kind == "dpmpp_2m_ve":
        return steps.dpmpp_2m_step(x, m, co["sig"], co["sn"], prev_x0=extra["e1"], sigma_prev=co["sp"],
                             parameterization="ve", **kw)
    if kind == "dpmpp_2m_sde":
        return steps.dpmpp_2m_sde_step(x, m, co["sig"], co["sn"], prev_x0=extra["e1"], sigma_prev=co["sp"], eta=0.7,
                                       noise=extra.get("noise"), seed=extra.get("seed"), stream=3, **kw)
    if kind == "dpmpp_2m_sde_heun_ve":
        return steps.dpmpp_2m_sde_step(x, m, co["sig"], co["sn"], prev_x0=extra["e1"], sigma_prev=co["sp"],
                                       solver_type="heun", parameterization="ve", noise=extra.get("noise"),
                                       seed=extra.get("seed"), stream=3, **kw)
    if kind == "flow":
        return steps.flow_match_euler_step(x, m, co["fl"], co["fn"], **kw)
    if kind == "flow_stochastic":
        return steps.flow_match_euler_step(x, m, co["fl"], co["fn"], stochastic=True, noise=extra.get("noise"),
                                     seed=extra.get("seed"), stream=3, **kw)
    raise AssertionError(kind)


KINDS = ["ddim", "ddim_clip", "ddpm", "ddpm_large", "euler", "euler_ancestral", "heun1", "heun2",
         "dpmpp_2m_first", "dpmpp_2m", "dpmpp_2m_ve", "dpmpp_2m_sde", "dpmpp_2m_sde_heun_ve", "flow",
         "flow_stochastic"]
NOISY = {"ddim", "ddpm", "ddpm_large", "euler", "euler_ancestral", "dpmpp_2m_sde", "dpmpp_2m_sde_heun_ve",
         "flow_stochastic"}


def _data(device, dtype, guided, seed=0):
    g = torch.Generator().manual_seed(seed)
    mk = lambda s=1.0: (s * torch.randn(SHAPE, generator=g, dtype=torch.float64)).to(device=device, dtype=dtype)
    x, m = mk(3.0), mk()
    u = mk() if guided else None
    extra = {"noise": mk(), "e1": mk(), "e2": mk(3.0)}
    return x, m, u, extra


def _reference(fn, monkeypatch):
    with monkeypatch.context() as mp:  # restores the variable as it was, set or not
        mp.setenv("GENCORE_FORCE_REFERENCE", "1")
        return fn()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("pred", PREDS)
@pytest.mark.parametrize("per_sample", [False, True])
def test_native_equals_reference_float64(kind, pred, per_sample, device, monkeypatch):
    x, m, u, extra = _data(device, torch.float64, guided=True)
    co = _coefs(kind, per_sample, device)
    kw = {"uncond_output": u, "guidance_scale": 4.0, "prediction_type": pred}
    nat = _call(kind, x, m, co, extra, **kw)
    ref = _reference(lambda: _call(kind, x, m, co, extra, **kw), monkeypatch)
    for a, b in zip(nat, ref):
        assert a.dtype == torch.float64 and a.shape == b.shape
        scale = max(1.0, b.abs().max().item())
        assert (a - b).abs().max().item() <= 1e-14 * scale


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("guided", [False, True])
def test_native_low_precision_against_float64(kind, dtype, guided, device, monkeypatch):
    x, m, u, extra = _data(device, dtype, guided)
    co = _coefs(kind, False, device)
    pred = "v_prediction" if kind.startswith("ddim") else "epsilon"
    kw = {"prediction_type": pred}
    if guided:
        kw.update(uncond_output=u, guidance_scale=3.0)
    nat = _call(kind, x, m, co, extra, **kw)
    eager = _reference(lambda: _call(kind, x, m, co, extra, **kw), monkeypatch)
    up = lambda t: None if t is None else t.double()
    kw64 = dict(kw, uncond_output=up(kw.get("uncond_output"))) if guided else kw
    ref64 = _call(kind, x.double(), m.double(), co, {k: up(v) for k, v in extra.items()}, **kw64)
    for a, b, r in zip(nat, eager, ref64):
        assert a.dtype == dtype
        scale = max(1.0, r.abs().max().item())
        assert_close_to_ref(a, b, r, atol=1e-6 * scale)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("pred", PREDS)
@pytest.mark.parametrize("per_sample", [False, True])
@pytest.mark.parametrize("force_reference", [False, True])
def test_solver_coefficients_equal_term_by_term_oracle(kind, pred, per_sample, force_reference, device,
                                                       monkeypatch):
    """Each solver's coefficient fold (on the kernels and on the PyTorch twin) against the step
    written term by term as diffusers / k-diffusion write it, in float64."""
    if force_reference:
        monkeypatch.setenv("GENCORE_FORCE_REFERENCE", "1")
    x, m, u, extra = _data(device, torch.float64, guided=True)
    co = _coefs(kind, per_sample, device)
    kw = {"uncond_output": u, "guidance_scale": 4.0, "prediction_type": pred}
    got = _call(kind, x, m, co, extra, **kw)
    want = _call(kind, x, m, co, extra, steps=term_oracle, **kw)
    for a, b in zip(got, want):
        assert a.dtype == torch.float64 and a.shape == b.shape
        scale = max(1.0, b.abs().max().item())
        assert (a - b).abs().max().item() <= 1e-11 * scale


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_low_precision_against_float64_term_oracle(kind, dtype, device):
    """Low precision against the float64 term-by-term oracle, within twice the error of the
    term-by-term formulas in the same dtype."""
    x, m, u, extra = _data(device, dtype, True)
    co = _coefs(kind, False, device)
    kw = {"prediction_type": "epsilon", "uncond_output": u, "guidance_scale": 3.0}
    got = _call(kind, x, m, co, extra, **kw)
    same = _call(kind, x, m, co, extra, steps=term_oracle, **kw)
    up = lambda t: None if t is None else t.double()
    ref64 = _call(kind, x.double(), m.double(), co, {k: up(v) for k, v in extra.items()}, steps=term_oracle,
                  **dict(kw, uncond_output=u.double()))
    for a, b, r in zip(got, same, ref64):
        assert a.dtype == dtype
        assert_close_to_ref(a, b, r, atol=1e-6 * max(1.0, r.abs().max().item()))


@pytest.mark.parametrize("kind", sorted(NOISY))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_in_kernel_noise_is_gencore_randn(kind, dtype, device):
    x, m, _, _ = _data(device, dtype, False)
    co = _coefs(kind, False, device)
    z = gencore.randn(SHAPE, seed=11, stream=3, sample_offset=5, dtype=dtype, device=device)
    seeded = _seeded(kind, x, m, co, seed=11, sample_offset=5)
    explicit = _call(kind, x, m, co, {"noise": z, "e1": m})
    for s, e in zip(seeded, explicit):
        assert torch.equal(s, e)
    # the noise of sample i does not depend on the batch it is drawn in
    single = _seeded(kind, x[1:2], m[1:2], co, seed=11, sample_offset=6)
    assert torch.equal(single[0], seeded[0][1:2])


def _seeded(kind, x, m, co, seed, sample_offset):
    return _call(kind, x, m, co, {"seed": seed, "e1": m}, sample_offset=sample_offset)


def test_seeded_low_precision_noise_is_float32_noise(device):
    x, m, _, _ = _data(device, torch.bfloat16, False)
    z = gencore.randn(SHAPE, seed=2, stream=0, device=device)
    a = ddpm_step(x, m, 0.5, 0.52, seed=2)[0]
    # the kernel adds float32 noise before rounding: compare with float32 arithmetic
    ref = ddpm_step(x.float(), m.float(), 0.5, 0.52, noise=z)[0]
    assert (a.float() - ref).abs().max().item() <= 2 * torch.finfo(torch.bfloat16).eps * ref.abs().max().item()


@pytest.mark.parametrize("kind", KINDS)
def test_non_contiguous_inputs(kind, device):
    g = torch.Generator().manual_seed(1)
    big = [torch.randn(3, 4, 5, 14, generator=g, dtype=torch.float64).to(device) for _ in range(6)]
    views = [t[:, ::2, :, ::2] for t in big]  # (3, 2, 5, 7), non-contiguous
    assert not views[0].is_contiguous()
    x, m, u, z, e1, e2 = views
    co = _coefs(kind, True, device)
    kw = {"uncond_output": u, "guidance_scale": 2.0}
    a = _call(kind, x, m, co, {"noise": z, "e1": e1, "e2": e2}, **kw)
    b = _call(kind, x.contiguous(), m.contiguous(), co,
              {"noise": z.contiguous(), "e1": e1.contiguous(), "e2": e2.contiguous()},
              uncond_output=u.contiguous(), guidance_scale=2.0)
    for p, q in zip(a, b):
        assert torch.equal(p, q)


@pytest.mark.parametrize("kind", KINDS)
def test_empty_batch(kind, device):
    e = torch.empty(0, 2, 3, device=device)
    co = _coefs(kind, False, device)
    out = _call(kind, e, e, co, {"noise": e, "e1": e, "e2": e})
    for t in out:
        assert t.shape == (0, 2, 3) and t.dtype == torch.float32
    xt, z = q_sample(e, torch.empty(0, dtype=torch.int64, device=device), SCHED, seed=0)
    assert xt.shape == (0, 2, 3) and z.shape == (0, 2, 3)


def test_per_sample_add_noise_mask_native(device, monkeypatch):
    x, m, u, extra = _data(device, torch.float64, True)
    co = _coefs("ddpm", True, device)
    mask = torch.tensor([True, False, True], device=device)
    nat = ddpm_step(x, m, co["at"], co["ap"], add_noise=mask, noise=extra["noise"], uncond_output=u,
                    guidance_scale=2.0)
    ref = _reference(lambda: ddpm_step(x, m, co["at"], co["ap"], add_noise=mask, noise=extra["noise"],
                                       uncond_output=u, guidance_scale=2.0), monkeypatch)
    for a, b in zip(nat, ref):
        assert (a - b).abs().max().item() <= 1e-12 * max(1.0, b.abs().max().item())
    no_noise = ddpm_step(x[1:2], m[1:2], float(co["at"][1]), float(co["ap"][1]), add_noise=False, uncond_output=u[1:2],
                         guidance_scale=2.0)[0]
    assert (nat[0][1:2] - no_noise).abs().max().item() <= 1e-12 * max(1.0, no_noise.abs().max().item())


def test_q_sample_native_equals_reference(device, monkeypatch):
    g = torch.Generator().manual_seed(3)
    x0 = torch.randn(5, 3, 11, generator=g, dtype=torch.float64).to(device)
    t = torch.tensor([0, 10, 500, 998, 999], device=device)
    for kw in ({"seed": 9, "stream": 4, "sample_offset": 2}, {"noise": torch.randn_like(x0)}):
        a = q_sample(x0, t, SCHED, **kw)
        b = _reference(lambda kw=kw: q_sample(x0, t, SCHED, **kw), monkeypatch)
        assert torch.equal(a[1], b[1])
        assert (a[0] - b[0]).abs().max().item() <= 1e-14
    x32 = x0.float()
    a = q_sample(x32, t, SCHED, seed=1)
    b = _reference(lambda: q_sample(x32, t, SCHED, seed=1), monkeypatch)
    r = q_sample(x0, t, SCHED, noise=a[1].double())[0]
    assert_close_to_ref(a[0], b[0], r)


def test_q_sample_gradcheck_native(device):
    x0 = torch.randn(3, 4, dtype=torch.float64, device=device, requires_grad=True)
    z = torch.randn(3, 4, dtype=torch.float64, device=device, requires_grad=True)
    t = torch.tensor([1, 50, 999], device=device)
    assert torch.autograd.gradcheck(lambda a, b: q_sample(a, t, SCHED, noise=b)[0], (x0, z))
    xt, _ = q_sample(x0, t, SCHED, seed=0)
    (g,) = torch.autograd.grad(xt.sum(), x0)
    assert torch.allclose(g, SCHED.alphas_cumprod[t.cpu()].sqrt().to(device)[:, None].expand(3, 4))


def test_opcheck(device):
    x, m, u, extra = _data(device, torch.float32, True)
    coef = [0.0, 1.2, -0.4, 0.0, 1.0, 0.0, 0.0, 0.9, 0.3, 0.1, 0.2, 0.0, 0.0, 0.0, 0.0, 0.0]
    rows = torch.rand(3, 16, dtype=torch.float64, device=device)
    h = [extra["e1"], extra["e2"], extra["noise"], x]
    cases = [
        (x, m, u, extra["noise"], [], None, coef, 2.0, 1.5, 1, False, 0, 0, 0),
        (x, m, None, None, [], rows, coef, 1.0, 0.0, 2, False, 5, 2, 7),
        (x, m, None, None, h[:2], None, coef, 1.0, 0.0, 0, True, 0, 0, 0),
        (x, m, u, None, h, rows, coef, 2.0, 0.0, 2, True, 1, 4, 2),
    ]
    for args in cases:
        torch.library.opcheck(ops.affine_step_op, args)
    ab = torch.rand(3, 2, dtype=torch.float64, device=device)
    x0 = torch.randn(3, 5, dtype=torch.float64, device=device, requires_grad=True)
    torch.library.opcheck(ops.q_sample_op, (x0, ab, None, 3, 1, 0))
    torch.library.opcheck(ops.q_sample_op, (x0, ab, torch.randn(3, 5, dtype=torch.float64, device=device,
                                                                requires_grad=True), 0, 0, 0))


def test_torch_compile_fullgraph(device):
    x, m, u, _ = _data(device, torch.float32, True)
    a_t = torch.tensor([0.3, 0.5, 0.7], dtype=torch.float64, device=device)
    a_p = torch.tensor([0.35, 0.55, 0.75], dtype=torch.float64, device=device)

    def f(x, m, u, at, ap):
        prev, x0 = ddim_step(x, m, at, ap, uncond_output=u, guidance_scale=5.0, eta=0.5, seed=3, stream=2)
        return prev * 2, x0

    cf = torch.compile(f, fullgraph=True)
    for at, ap in ((0.3, 0.35), (a_t, a_p)):
        got = cf(x, m, u, at, ap)
        want = f(x, m, u, at, ap)
        for a, b in zip(got, want):
            assert torch.equal(a, b)

    def h(x, m, buf0, buf1):
        return euler_step(x, m, 3.0, 2.0, out=(buf0, buf1))

    bufs = (torch.empty_like(x), torch.empty_like(x))
    got = torch.compile(h, fullgraph=True)(x, m, *bufs)
    want = euler_step(x, m, 3.0, 2.0)
    for a, b, buf in zip(got, want, bufs):
        assert torch.equal(a, b) and torch.equal(buf, b)

    def g(x0, t):
        xt, z = q_sample(x0, t, SCHED, seed=1)
        return xt, z

    cg = torch.compile(g, fullgraph=True)
    t = torch.tensor([3, 4, 5], device=device)
    for a, b in zip(cg(x, t), g(x, t)):
        assert torch.equal(a, b)


def test_bad_inputs_raise_before_any_kernel():
    x = torch.randn(2, 3)
    m = torch.randn(2, 3)
    with pytest.raises(ValueError, match="model_output is on"):
        ddim_step(x, torch.empty(2, 3, device="meta"), 0.5, 0.6)
    with pytest.raises(ValueError, match="uncond_output is on"):
        ddim_step(x, m, 0.5, 0.6, uncond_output=torch.empty(2, 3, device="meta"), guidance_scale=2.0)
    with pytest.raises(ValueError, match="alpha_prod_t is on"):
        ddim_step(x, m, torch.empty(2, device="meta"), 0.6)
    with pytest.raises(TypeError, match="uncond_output must have the dtype"):
        ddim_step(x, m, 0.5, 0.6, uncond_output=m.double(), guidance_scale=2.0)
    with pytest.raises(TypeError, match="noise must have the dtype"):
        ddpm_step(x, m, 0.5, 0.6, noise=m.half())
    with pytest.raises(ValueError, match="derivative must have the shape"):
        heun_step(x, m, 2.0, 1.0, stage=2, derivative=torch.randn(2, 4), original_sample=x)
    with pytest.raises(ValueError, match="prev_x0 must have the shape"):
        dpmpp_2m_step(x, m, 2.0, 1.0, prev_x0=torch.randn(3, 3), sigma_prev=3.0)
    with pytest.raises(ValueError, match="sigma must be a float or a tensor of shape"):
        euler_step(x, m, torch.ones(2, 1, dtype=torch.float64), 1.0)
    with pytest.raises(TypeError, match="alpha_prod_t must be a float or a floating-point tensor"):
        ddim_step(x, m, torch.ones(2, dtype=torch.int64), 0.6)
    with pytest.raises(ValueError, match="add_noise"):
        ddpm_step(x, m, 0.5, 0.6, add_noise=torch.ones(3, dtype=torch.bool), seed=0)
    with pytest.raises(ValueError, match="seed"):
        ddpm_step(x, m, 0.5, 0.6, seed=-1)
    with pytest.raises(ValueError, match="sample must have a batch dimension"):
        ddim_step(torch.tensor(1.0), torch.tensor(1.0), 0.5, 0.6)
    with pytest.raises(ValueError, match="t must be in"):
        q_sample(x, torch.tensor([0, 1000]), SCHED, seed=0)
    with pytest.raises(ValueError, match="variance_type"):
        ddpm_step(x, m, 0.5, 0.6, variance_type="fixed_small_log", seed=0)
    with pytest.raises(ValueError, match="name must be one of"):
        make_schedule("laplace")
    with pytest.raises(ValueError, match="guidance_scale"):
        euler_ancestral_step(x, m, 2.0, 1.0, guidance_scale=7.5, seed=0)


def test_large_tensor_threaded_chunks(device, monkeypatch):
    """Several parallel chunks whose boundaries fall inside samples and inside 4-element blocks."""
    g = torch.Generator().manual_seed(8)
    shape = (3, 3, 101, 107)  # 32421 elements per sample (odd): ragged last noise block
    x, m, u, e1 = (torch.randn(shape, generator=g, dtype=torch.float64).to(device) for _ in range(4))
    co = _coefs("ddpm", True, device)
    z = gencore.randn(shape, seed=4, stream=1, dtype=torch.float64, device=device)
    for fn in (
        lambda **k: ddpm_step(x, m, co["at"], co["ap"], uncond_output=u, guidance_scale=3.0, **k),
        lambda **k: euler_ancestral_step(x, m, co["sig"], co["sn"], uncond_output=u, guidance_scale=3.0, **k),
    ):
        seeded = fn(seed=4, stream=1)
        explicit = fn(noise=z)
        ref = _reference(lambda fn=fn: fn(noise=z), monkeypatch)
        for a, b, r in zip(seeded, explicit, ref):
            assert torch.equal(a, b)
            assert (a - r).abs().max().item() <= 1e-12 * max(1.0, r.abs().max().item())
    a = dpmpp_2m_step(x, m, co["sig"], co["sn"], prev_x0=e1, sigma_prev=co["sp"])
    b = _reference(lambda: dpmpp_2m_step(x, m, co["sig"], co["sn"], prev_x0=e1, sigma_prev=co["sp"]), monkeypatch)
    for p, q in zip(a, b):
        assert (p - q).abs().max().item() <= 1e-12 * max(1.0, q.abs().max().item())


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("native", [True, False])
def test_out_buffers_and_in_place(kind, native, device, monkeypatch):
    if not native:
        monkeypatch.setenv("GENCORE_FORCE_REFERENCE", "1")
    x, m, u, extra = _data(device, torch.float64, True)
    co = _coefs(kind, True, device)
    kw = {"uncond_output": u, "guidance_scale": 2.0}
    want = _call(kind, x, m, co, extra, **kw)
    bufs = tuple(torch.empty_like(x) for _ in want)
    got = _call(kind, x, m, co, extra, out=bufs, **kw)
    assert all(g is b for g, b in zip(got, bufs))
    for g, w in zip(got, want):
        assert torch.equal(g, w)
    xi = x.clone()  # in place: the new sample overwrites the old one
    bufs = (xi, *tuple(torch.empty_like(x) for _ in want[1:]))
    got = _call(kind, xi, m, co, extra, out=bufs, **kw)
    assert got[0] is xi
    for g, w in zip(got, want):
        assert torch.equal(g, w)


def test_bad_out_arguments():
    x, m = torch.randn(2, 3), torch.randn(2, 3)
    with pytest.raises(TypeError, match="out must be a tuple of 2"):
        ddim_step(x, m, 0.5, 0.6, out=(torch.empty(2, 3),))
    with pytest.raises(ValueError, match=r"out\[1\] must have the shape"):
        ddim_step(x, m, 0.5, 0.6, out=(torch.empty(2, 3), torch.empty(2, 4)))
    with pytest.raises(ValueError, match=r"out\[0\] must be contiguous"):
        ddim_step(x, m, 0.5, 0.6, out=(torch.empty(3, 2).t(), torch.empty(2, 3)))
    buf = torch.empty(2, 3)
    with pytest.raises(ValueError, match="distinct"):
        ddim_step(x, m, 0.5, 0.6, out=(buf, buf))
    with pytest.raises(TypeError, match="out must be a tuple of 3"):
        heun_step(x, m, 2.0, 1.0, out=(buf, torch.empty(2, 3)))
