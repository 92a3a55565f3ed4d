"""The sampler engine: the Coef value against the kernel's coefficient order, the prediction
conversions on every path, and the fused ``affine_step`` op (native against its PyTorch twin and a
float64 evaluation of the affine map written out here, history inputs, noise, aux, per-sample
coefficients, bad input, opcheck, torch.compile)."""

from __future__ import annotations

import pathlib
import re

import pytest
import torch

import gencore
import gencore.diffusion as gd
from _util import assert_close_to_ref
from gencore.diffusion import Coef, affine_step
from gencore.diffusion.paths import PATHS, PREDICTIONS, VP, path, prediction

HEADER = pathlib.Path(__file__).resolve().parents[2] / "csrc" / "diffusion" / "diffusion_math.h"
native = pytest.mark.skipif(not gencore.info()["cpu_native"], reason="native extension not built")


def test_coef_order_is_the_kernels():
    enum = re.search(r"enum CoefIndex : int \{([^}]*)\}", HEADER.read_text()).group(1)
    names = [n.split("=")[0].strip().lower() for n in enum.split(",")]
    assert names[-1] == "knumcoef"
    assert list(Coef._fields) == names[:-1]
    lib = gencore._native.lib()
    if lib is not None:
        assert list(lib.diffusion_coef_names) == list(Coef._fields)
        assert lib.diffusion_max_history == 4


@pytest.mark.parametrize("space", sorted(PATHS))
@pytest.mark.parametrize("pred", sorted(PREDICTIONS))
def test_prediction_conversions_invert_the_path(space, pred):
    """For x = alpha x0 + sigma eps and the model output each prediction type defines, the
    conversions give back x0 and eps."""
    g = torch.Generator().manual_seed(1)
    x0, eps = torch.randn(2, 50, generator=g, dtype=torch.float64)
    p = path(space)
    for s in (0.2, 0.7, 3.0) if space != "flow" else (0.2, 0.7):
        a, sg = p.alpha_sigma(s)
        x = a * x0 + sg * eps
        n = (a * a + sg * sg) ** 0.5
        m = {"epsilon": eps, "sample": x0, "v_prediction": (a * eps - sg * x0) / n, "flow": eps - x0}[pred]
        cx, cm = p.x0(prediction(pred), s)
        torch.testing.assert_close(cx * x + cm * m, x0, rtol=1e-12, atol=1e-12)
        ex, em = prediction(pred).eps(a, sg)
        torch.testing.assert_close(ex * x + em * m, eps, rtol=1e-12, atol=1e-12)


def test_vp_from_alpha_prod_matches_sigma_form():
    abar = 0.3
    sigma = ((1 - abar) / abar) ** 0.5
    assert VP.from_alpha_prod(abar) == pytest.approx(VP.alpha_sigma(sigma))
    assert VP.log_snr(sigma) == pytest.approx(-torch.tensor(sigma).log().item())


def test_unknown_names_raise():
    with pytest.raises(ValueError, match="prediction_type"):
        prediction("x")
    with pytest.raises(ValueError, match="parameterization"):
        path("y")


def _affine64(k: Coef, x, m, z, h, clip):
    """The affine map of diffusion_math.h in float64, every term written out."""
    c = {name: (v.double().reshape(-1, *([1] * (x.dim() - 1))) if isinstance(v, torch.Tensor) else v)
         for name, v in k._asdict().items()}
    x, m = x.double(), m.double()
    z = torch.zeros_like(x) if z is None else z.double()
    h = [t.double() for t in h] + [torch.zeros_like(x)] * (4 - len(h))
    xs = x + c["kpre"] * z
    x0 = c["ax"] * xs + c["am"] * m
    if clip is not None:
        x0 = x0.clamp(-clip, clip)
    d = c["ex"] * xs + c["em"] * m + c["e0"] * x0
    prev = c["px"] * xs + c["p0"] * x0 + c["pd"] * d + c["pz"] * z
    for name, t in zip(("p1", "p2", "p3", "p4"), h):
        prev = prev + c[name] * t
    return prev, x0, c["qd"] * d + c["q1"] * h[0]


def _random_coef(per_sample: bool, n: int, device, seed: int = 0) -> Coef:
    g = torch.Generator().manual_seed(seed)
    vals = torch.randn(len(Coef._fields), n, generator=g, dtype=torch.float64)
    if per_sample:
        return Coef(*(v.to(device) for v in vals))
    return Coef(*(float(v[0]) for v in vals))


@pytest.mark.parametrize("n_history", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("noise", ["none", "explicit", "seed"])
@pytest.mark.parametrize("per_sample", [False, True])
@pytest.mark.parametrize("force_reference", [False, True])
def test_affine_step_float64(n_history, noise, per_sample, force_reference, device, monkeypatch):
    if force_reference:
        monkeypatch.setenv("GENCORE_FORCE_REFERENCE", "1")
    g = torch.Generator().manual_seed(n_history)
    shape = (3, 5, 7)
    x, m, u, z, *h = (torch.randn(shape, generator=g, dtype=torch.float64).to(device) for _ in range(4 + n_history))
    k = _random_coef(per_sample, 3, device)
    kw = {"explicit": {"noise": z}, "seed": {"seed": 9, "stream": 2, "sample_offset": 4}, "none": {}}[noise]
    got = affine_step(k, x, m, uncond_output=u, guidance_scale=2.5, history=h, clip=1.5, want_aux=True, **kw)
    zz = {"explicit": z, "none": None,
          "seed": gencore.randn(shape, seed=9, stream=2, sample_offset=4, dtype=torch.float64, device=device)}[noise]
    want = _affine64(k, x, u + 2.5 * (m - u), zz, h, 1.5)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("n_history", [0, 4])
def test_affine_step_low_precision(dtype, n_history, device, monkeypatch):
    g = torch.Generator().manual_seed(3)
    shape = (4, 33)
    x, m, z, *h = (torch.randn(shape, generator=g).to(device=device, dtype=dtype) for _ in range(3 + n_history))
    k = _random_coef(False, 4, device, seed=2)
    got = affine_step(k, x, m, history=h, noise=z, want_aux=True)
    with monkeypatch.context() as mp:
        mp.setenv("GENCORE_FORCE_REFERENCE", "1")
        twin = affine_step(k, x, m, history=h, noise=z, want_aux=True)
    want = _affine64(k, x, m, z, h, None)
    for a, b, r in zip(got, twin, want):
        assert a.dtype == dtype
        assert_close_to_ref(a, b, r, atol=1e-6 * max(1.0, r.abs().max().item()))


@native
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_native_is_its_twin_bit_for_bit(dtype, device, monkeypatch):
    """The twin mirrors step_element's order of operations, so the results are the same bits."""
    g = torch.Generator().manual_seed(5)
    x, m, u, z, h1, h2 = (torch.randn(6, 40, generator=g).to(device=device, dtype=dtype) for _ in range(6))
    k = _random_coef(True, 6, device, seed=4)
    kw = dict(uncond_output=u, guidance_scale=3.0, history=(h1, h2), noise=z, want_aux=True, clip=2.0)
    got = affine_step(k, x, m, **kw)
    with monkeypatch.context() as mp:
        mp.setenv("GENCORE_FORCE_REFERENCE", "1")
        twin = affine_step(k, x, m, **kw)
    for a, b in zip(got, twin):
        assert torch.equal(a, b)


def test_affine_step_bad_input():
    x, m = torch.randn(2, 3), torch.randn(2, 3)
    with pytest.raises(TypeError, match=r"coef must be a gencore\.diffusion\.Coef"):
        affine_step((1.0,) * 16, x, m)
    with pytest.raises(ValueError, match="at most 4"):
        affine_step(Coef(), x, m, history=[x] * 5)
    with pytest.raises(ValueError, match=r"history\[1\] must have the shape"):
        affine_step(Coef(), x, m, history=[x, torch.randn(2, 4)])
    with pytest.raises(ValueError, match=r"coef\.p0"):
        affine_step(Coef(p0=torch.ones(3, dtype=torch.float64)), x, m)
    with pytest.raises(TypeError, match=r"coef\.px"):
        affine_step(Coef(px="1"), x, m)
    with pytest.raises(ValueError, match="either noise"):
        affine_step(Coef(), x, m, noise=x, seed=1)
    with pytest.raises(ValueError, match="clip"):
        affine_step(Coef(), x, m, clip=-1.0)
    with pytest.raises(TypeError, match="out must be a tuple of 3"):
        affine_step(Coef(), x, m, want_aux=True, out=(torch.empty(2, 3), torch.empty(2, 3)))


def test_affine_step_compiles_fullgraph(device):
    g = torch.Generator().manual_seed(6)
    x, m, h1, h2, h3 = (torch.randn(3, 9, generator=g).to(device) for _ in range(5))
    rows = torch.rand(3, dtype=torch.float64, device=device)

    def f(x, m, h1, h2, h3, p2):
        k = Coef(ax=1.0, am=-0.3, p0=0.8, px=0.1, p1=0.2, p2=p2, p3=-0.1, pz=0.05)
        return affine_step(k, x, m, history=(h1, h2, h3), seed=3, stream=1)

    cf = torch.compile(f, fullgraph=True)
    for p2 in (0.4, rows):
        for a, b in zip(cf(x, m, h1, h2, h3, p2), f(x, m, h1, h2, h3, p2)):
            assert torch.equal(a, b)


@pytest.mark.parametrize("per_sample", [False, True])
def test_non_finite_inputs_give_the_kernels_result_on_both_paths(per_sample, device, monkeypatch):
    """A zero coefficient still multiplies its input (0 * inf = NaN) on the kernel and on the twin
    alike, so the fallback path never changes a result."""
    x = torch.tensor([[1.0, 2.0, float("-inf"), 0.5]], dtype=torch.float64, device=device)
    m = torch.tensor([[float("inf"), 3.0, 1.0, float("nan")]], dtype=torch.float64, device=device)
    h = torch.tensor([[0.0, float("inf"), 1.0, 2.0]], dtype=torch.float64, device=device)
    k = Coef(ax=1.0, am=0.0, px=2.0, p0=0.5, pd=0.0, p1=0.0, qd=1.0, ex=0.25)
    if per_sample:
        k = Coef(*(torch.tensor([v], dtype=torch.float64, device=device) for v in k))
    got = affine_step(k, x, m, history=(h,), want_aux=True)
    with monkeypatch.context() as mp:
        mp.setenv("GENCORE_FORCE_REFERENCE", "1")
        twin = affine_step(k, x, m, history=(h,), want_aux=True)
    want = _affine64(k, x, m, None, [h], None)
    for a, b, c in zip(got, twin, want):
        torch.testing.assert_close(a, c, equal_nan=True)
        torch.testing.assert_close(b, c, equal_nan=True)
    assert torch.isnan(got[0][0, 0]) and torch.isnan(got[0][0, 1])  # 0 * inf in x0's m term, in p1 h


def test_out_partially_overlapping_an_input_is_refused():
    buf = torch.randn(10, 3)
    x, m = buf[0:8], torch.randn(8, 3)
    with pytest.raises(ValueError, match=r"out\[0\] partially overlaps sample"):
        gd.ddim_step(x, m, 0.5, 0.6, out=(buf[1:9], torch.empty(8, 3)))
    mbuf = torch.randn(10, 3)
    with pytest.raises(ValueError, match=r"out\[1\] partially overlaps model_output"):
        gd.ddim_step(x.clone(), mbuf[0:8], 0.5, 0.6, out=(torch.empty(8, 3), mbuf[2:10]))
    prev, _ = gd.ddim_step(x, m, 0.5, 0.6, out=(x, torch.empty(8, 3)))  # exactly in place is fine
    assert prev.data_ptr() == buf.data_ptr()


@pytest.mark.parametrize("force_reference", [False, True])
def test_step_domain_errors_name_the_argument(force_reference, monkeypatch):
    if force_reference:
        monkeypatch.setenv("GENCORE_FORCE_REFERENCE", "1")
    x, eps = torch.randn(2, 3), torch.randn(2, 3)
    with pytest.raises(ValueError, match="alpha_prod_t_prev"):
        gd.ddim_step(x, eps, 0.97, 0.46, eta=0.5, seed=0)
    with pytest.raises(ValueError, match="alpha_prod_t_prev"):
        gd.ddpm_step(x, eps, 0.97, 0.46, variance_type="fixed_large", seed=0)
    with pytest.raises(ValueError, match="alpha_prod_t > 0"):
        gd.ddim_step(x, eps, 0.0, 0.5)
    with pytest.raises(ValueError, match="sigma_next"):
        gd.euler_step(x, eps, 2.0, float("inf"))
    with pytest.raises(ValueError, match="sigma_prev"):
        gd.dpmpp_2m_step(x, eps, 2.0, 1.0, prev_x0=eps, sigma_prev=2.0)
    # DDIM with eta = 0 runs towards more noise too (inversion): x_prev = sqrt(abar_prev) x0 + sqrt(1 - abar_prev) eps
    prev, x0 = gd.ddim_step(x, eps, 0.97, 0.46)
    torch.testing.assert_close(prev, 0.46**0.5 * x0 + (1 - 0.46) ** 0.5 * eps)
    # v-prediction at alpha_prod_t = 0 (zero terminal SNR) is defined: x0 = -v
    _, x0 = gd.ddim_step(x, eps, 0.0, 0.5, prediction_type="v_prediction")
    torch.testing.assert_close(x0, -eps)


def test_solver_edge_cases_from_review():
    x, m = torch.randn(2, 3, dtype=torch.float64), torch.randn(2, 3, dtype=torch.float64)
    # DPM-Solver++ heun correction at h = 0 (equal sigmas): the identity, as the midpoint form
    for solver_type in ("midpoint", "heun"):
        prev, _ = gd.dpmpp_2m_sde_step(x, m, 0.03, 0.03, prev_x0=m, sigma_prev=0.1, eta=0.0, solver_type=solver_type)
        torch.testing.assert_close(prev, x)
    with pytest.raises(ValueError, match="sigma_next"):
        gd.dpmpp_2m_sde_step(x, m, 1.0, 2.0, eta=1.0, seed=0)
    with pytest.raises(TypeError, match=r"history\[0\]"):
        affine_step(Coef(), x, m, history=[None])
    # Karras' churn outside [s_tmin, s_tmax] draws no noise, so none is needed
    prev, _ = gd.euler_step(x, m, 10.0, 5.0, s_churn=1.0, s_tmax=1.0, num_steps=10)
    torch.testing.assert_close(prev, gd.euler_step(x, m, 10.0, 5.0)[0])
    # per-sample churn keeps float64 gamma: equal to the scalar calls
    z = torch.randn(2, 3, dtype=torch.float64)
    sig = torch.tensor([10.0, 3.0], dtype=torch.float64)
    both, _ = gd.euler_step(x, m, sig, sig / 2, s_churn=2.0, num_steps=7, noise=z)
    for i in range(2):
        one, _ = gd.euler_step(x[i:i + 1], m[i:i + 1], float(sig[i]), float(sig[i] / 2), s_churn=2.0, num_steps=7,
                               noise=z[i:i + 1])
        torch.testing.assert_close(both[i:i + 1], one, rtol=1e-14, atol=1e-14)
