"""The fused affine coupling op against its reference, autograd, oracles and bad input."""

from __future__ import annotations

import math

import pytest
import torch
from tests._util import assert_close_to_ref

import gencore
import gencore.flows as gf
from gencore.flows import reference

CLAMPS = [None, "atan", "tanh", "sigmoid"]
NATIVE = gencore.info()["cpu_native"]


def _inputs(shape, dtype=torch.float64, device="cpu", scale=2.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=torch.float64) * 2
    t = torch.randn(shape, generator=g, dtype=torch.float64)
    v = torch.randn(shape, generator=g, dtype=torch.float64) * scale
    return [a.to(device=device, dtype=dtype) for a in (x, t, v)]


@pytest.mark.parametrize("clamp", CLAMPS)
@pytest.mark.parametrize("inverse", [False, True])
@pytest.mark.parametrize("shape", [(7, 5), (33, 3, 4, 2), (5, 1), (64, 300), (3,)])
def test_float64_matches_reference(device, clamp, inverse, shape):
    x, t, v = _inputs(shape, device=device)
    y, ld = gf.affine_coupling(x, t, v, clamp=clamp, inverse=inverse, clamp_value=1.5)
    yr, ldr = reference.affine_coupling(x, t, v, clamp=clamp, inverse=inverse, clamp_value=1.5)
    assert y.shape == x.shape and ld.shape == (shape[0],)
    torch.testing.assert_close(y, yr, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(ld, ldr, rtol=1e-13, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("clamp", CLAMPS)
@pytest.mark.parametrize("inverse", [False, True])
def test_low_precision_against_float64(device, dtype, clamp, inverse):
    x, t, v = _inputs((40, 70), device=device, scale=1.0, seed=3)
    ref_y, ref_ld = reference.affine_coupling(x, t, v, clamp=clamp, inverse=inverse)
    lo = [a.to(dtype) for a in (x, t, v)]
    y, ld = gf.affine_coupling(*lo, clamp=clamp, inverse=inverse)
    ey, eld = reference.affine_coupling(*lo, clamp=clamp, inverse=inverse)
    assert y.dtype == dtype and ld.dtype == dtype
    eps = torch.finfo(dtype).eps
    assert_close_to_ref(y, ey, ref_y, atol=4 * eps * float(ref_y.abs().max()))
    assert_close_to_ref(ld, eld, ref_ld, atol=4 * eps * float(ref_ld.abs().max()))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("clamp", [None, "atan", "sigmoid"])
def test_low_precision_gradients(device, dtype, clamp):
    x, t, v = _inputs((16, 50), device=device, scale=1.0, seed=4)
    gy = torch.randn(16, 50, dtype=torch.float64, device=device)
    gl = torch.randn(16, dtype=torch.float64, device=device)

    def grads(fn, dt):
        ins = [a.detach().to(dt).requires_grad_() for a in (x, t, v)]
        y, ld = fn(*ins, clamp=clamp)
        torch.autograd.backward((y, ld), (gy.to(dt), gl.to(dt)))
        return [a.grad for a in ins]

    ref = grads(reference.affine_coupling, torch.float64)
    fast = grads(gf.affine_coupling, dtype)
    eager = grads(reference.affine_coupling, dtype)
    eps = torch.finfo(dtype).eps
    for f, e, r in zip(fast, eager, ref):
        assert_close_to_ref(f, e, r, atol=4 * eps * float(r.abs().max()))


@pytest.mark.parametrize("check", [torch.autograd.gradcheck, torch.autograd.gradgradcheck])
@pytest.mark.parametrize("clamp", CLAMPS)
@pytest.mark.parametrize("inverse", [False, True])
def test_gradcheck(device, clamp, inverse, check):
    """First derivatives, and second ones (eager calls support create_graph=True), in float64."""
    x, t, v = _inputs((3, 4, 2), device=device, scale=1.0, seed=5)
    ins = [a.requires_grad_() for a in (x, t, v)]
    assert check(lambda a, b, c: gf.affine_coupling(a, b, c, clamp=clamp, inverse=inverse), ins)


@pytest.mark.parametrize("clamp", CLAMPS)
@pytest.mark.parametrize("inverse", [False, True])
def test_gradients_match_reference_autograd(device, clamp, inverse):
    x, t, v = _inputs((9, 37), device=device, seed=6)
    gy = torch.randn_like(x)
    gl = torch.randn(9, dtype=x.dtype, device=device)

    def grads(fn):
        ins = [a.clone().requires_grad_() for a in (x, t, v)]
        y, ld = fn(*ins, clamp=clamp, inverse=inverse)
        torch.autograd.backward((y, ld), (gy, gl))
        return [a.grad for a in ins]

    for a, b in zip(grads(gf.affine_coupling), grads(reference.affine_coupling)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_only_logdet_or_only_y_used(device):
    x, t, v = _inputs((4, 6), device=device)
    for pick in (0, 1):
        ins = [a.clone().requires_grad_() for a in (x, t, v)]
        out = gf.affine_coupling(*ins, clamp="tanh")[pick].sum()
        out.backward()
        ref = [a.clone().requires_grad_() for a in (x, t, v)]
        reference.affine_coupling(*ref, clamp="tanh")[pick].sum().backward()
        for a, b in zip(ins, ref):
            expected = torch.zeros_like(a) if b.grad is None else b.grad  # logdet ignores x, shift
            torch.testing.assert_close(a.grad, expected)


@pytest.mark.parametrize("clamp", [None, "sigmoid"])
def test_opcheck(clamp):
    x, t, v = _inputs((5, 3, 2), dtype=torch.float32)
    args = (x.requires_grad_(), t.requires_grad_(), v.requires_grad_(), clamp, 2.0, False)
    torch.library.opcheck(torch.ops.gencore.affine_coupling.default, args)
    gy, gl = torch.randn(5, 3, 2), torch.randn(5)
    torch.library.opcheck(torch.ops.gencore.affine_coupling_backward.default,
                          (gy, gl, x.detach(), t.detach(), v.detach(), clamp, 2.0, True))


def test_torch_compile_fullgraph():
    x, t, v = _inputs((8, 6), dtype=torch.float32)

    def f(a, b, c):
        y, ld = gf.affine_coupling(a, b, c, clamp="atan")
        return (y * y).sum() + ld.sum()

    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    ins = [a.clone().requires_grad_() for a in (x, t, v)]
    out = compiled(*ins)
    out.backward()
    ref = [a.clone().requires_grad_() for a in (x, t, v)]
    f(*ref).backward()
    torch.testing.assert_close(out, f(*[a.detach() for a in ref]))
    for a, b in zip(ins, ref):
        torch.testing.assert_close(a.grad, b.grad)


def test_inverse_undoes_forward(device):
    for clamp in CLAMPS:
        x, t, v = _inputs((6, 11), device=device, seed=7)
        y, ld = gf.affine_coupling(x, t, v, clamp=clamp)
        x2, ld2 = gf.affine_coupling(y, t, v, clamp=clamp, inverse=True)
        torch.testing.assert_close(x2, x, rtol=1e-13, atol=1e-13)
        torch.testing.assert_close(ld2, -ld, rtol=0, atol=0)


def test_non_contiguous_and_broadcast_rows(device):
    x, t, v = _inputs((6, 20), device=device, seed=8)
    params = torch.cat([t, v], 1)  # shift/log_scale as column slices: strided rows, no copy
    shift, log_scale = params[:, :20], params[:, 20:]
    xt = x.T.contiguous().T  # column-major
    row = t[:1].expand(6, 20)  # a row broadcast over the batch (stride 0)
    one = (x[:, 3:4], params[:, 5:6], params[:, 30:31])  # one element per sample, strided rows
    for a, b, c in ((xt, shift, log_scale), (x, row, log_scale), (x[:, ::2], t[:, ::2], v[:, ::2]), one):
        y, ld = gf.affine_coupling(a, b, c, clamp="atan")
        yr, ldr = reference.affine_coupling(a, b, c, clamp="atan")
        torch.testing.assert_close(y, yr, rtol=1e-13, atol=1e-13)
        torch.testing.assert_close(ld, ldr, rtol=1e-13, atol=1e-12)
        assert y.is_contiguous()


def test_empty_inputs(device):
    for shape in ((0, 5), (4, 0), (0,)):
        x, t, v = _inputs(shape, device=device)
        y, ld = gf.affine_coupling(x, t, v, clamp="tanh")
        assert y.shape == shape and ld.shape == (shape[0],)
        assert torch.equal(ld, torch.zeros(shape[0], dtype=x.dtype, device=device))


def test_result_independent_of_thread_count():
    x, t, v = _inputs((300, 257), dtype=torch.float32, seed=9)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        a = gf.affine_coupling(x, t, v, clamp="atan")
        torch.set_num_threads(max(2, old))
        b = gf.affine_coupling(x, t, v, clamp="atan")
    finally:
        torch.set_num_threads(old)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_non_finite_propagate_per_sample(device):
    """Documented behaviour: IEEE propagation, confined to the sample holding the value."""
    x, t, v = _inputs((4, 5), device=device)
    x[1, 2] = float("nan")
    v[2, 0] = float("nan")
    t[3, 4] = float("inf")
    y, ld = gf.affine_coupling(x, t, v)
    yr, ldr = reference.affine_coupling(x, t, v)
    assert torch.isnan(y[1, 2]) and torch.isfinite(ld[1])
    assert torch.isnan(ld[2]) and torch.isnan(y[2, 0])
    assert torch.isinf(y[3, 4]) and torch.isfinite(ld[3])
    assert torch.isfinite(y[0]).all() and torch.isfinite(ld[0])
    torch.testing.assert_close(y, yr, equal_nan=True)
    torch.testing.assert_close(ld, ldr, equal_nan=True)
    # Saturating clamps turn an infinite log-scale into a finite scale.
    v2 = v.clone()
    v2[0, 0] = float("inf")
    v2[0, 1] = -float("inf")
    for clamp in ("atan", "tanh"):
        y2, ld2 = gf.affine_coupling(x, t, v2, clamp=clamp)
        y2r, ld2r = reference.affine_coupling(x, t, v2, clamp=clamp)
        assert torch.isfinite(ld2[0])
        torch.testing.assert_close(ld2, ld2r, equal_nan=True)
        torch.testing.assert_close(y2, y2r, equal_nan=True)


def test_float32_extreme_log_scales_match_torch():
    """The vectorised exp/log/tanh/atan of the kernels across their whole range."""
    v = torch.cat([torch.linspace(-120, 120, 4001), torch.tensor([0.0, -0.0, 1e-30, -1e-30, 88.7, 88.73])])
    v = v.reshape(1, -1)
    x, t = torch.ones_like(v), torch.zeros_like(v)
    for clamp in CLAMPS:
        y, _ = gf.affine_coupling(x, t, v, clamp=clamp, clamp_value=50.0)
        y64, _ = reference.affine_coupling(x.double(), t.double(), v.double(), clamp=clamp, clamp_value=50.0)
        y32, _ = reference.affine_coupling(x, t, v, clamp=clamp, clamp_value=50.0)
        fin = torch.isfinite(y64.float())
        assert torch.equal(torch.isfinite(y), torch.isfinite(y32))
        rel = ((y.double() - y64).abs() / y64.abs().clamp_min(1e-300))[fin]
        rel32 = ((y32.double() - y64).abs() / y64.abs().clamp_min(1e-300))[fin]
        # exp amplifies the error of s: both stay within a few ulp of |s| relative.
        assert rel.max() <= 2 * rel32.max() + 64 * torch.finfo(torch.float32).eps


def test_zuko_monotonic_affine_oracle():
    """zuko's MonotonicAffineTransform: y = exp(a) x + b with its own log-scale squash."""
    zt = pytest.importorskip("zuko.transforms")
    x, t, raw = _inputs((10, 7), seed=11)
    z = zt.MonotonicAffineTransform(t, raw, slope=1e-3)
    y_z, ladj_z = z.call_and_ladj(x)
    log_scale = raw / (1 + abs(raw / math.log(1e-3)))  # zuko's squash, applied before the op
    y, ld = gf.affine_coupling(x, t, log_scale)
    torch.testing.assert_close(y, y_z, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(ld, ladj_z.sum(-1), rtol=1e-13, atol=1e-13)
    x_back, ld_inv = gf.affine_coupling(y_z, t, log_scale, inverse=True)
    torch.testing.assert_close(x_back, z.inv(y_z), rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(ld_inv, -ladj_z.sum(-1), rtol=1e-13, atol=1e-13)


def test_closed_form_clamps():
    """FrEIA's soft clamp, Glow's sigmoid scale and tanh against torch.distributions-free formulas."""
    x, t, v = _inputs((5, 9), seed=12)
    c = 1.7
    cases = {
        "atan": c * 2 / math.pi * torch.atan(v / c),
        "tanh": c * torch.tanh(v / c),
        "sigmoid": torch.log(torch.sigmoid(v + 2)),
    }
    for clamp, s in cases.items():
        y, ld = gf.affine_coupling(x, t, v, clamp=clamp, clamp_value=c)
        torch.testing.assert_close(y, x * torch.exp(s) + t, rtol=1e-13, atol=1e-13)
        torch.testing.assert_close(ld, s.sum(1), rtol=1e-13, atol=1e-13)
    # Glow's form: y = (x + t) * sigmoid(v + 2) is the same map with shift t * sigmoid(v + 2).
    sig = torch.sigmoid(v + 2)
    y, ld = gf.affine_coupling(x, t * sig, v, clamp="sigmoid")
    torch.testing.assert_close(y, (x + t) * sig, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(ld, torch.log(sig).sum(1), rtol=1e-13, atol=1e-13)


# ---- bad input ------------------------------------------------------------------------------

def test_bad_input_raises_before_kernels(monkeypatch):
    x, t, v = _inputs((4, 3), dtype=torch.float32)

    class Boom:
        def __getattr__(self, name):
            raise AssertionError("a kernel ran")

    monkeypatch.setattr(gencore._native, "_lib", Boom())
    with pytest.raises(ValueError, match="shift"):
        gf.affine_coupling(x, t[:, :2], v)
    with pytest.raises(ValueError, match="log_scale"):
        gf.affine_coupling(x, t, v[:3])
    with pytest.raises(TypeError, match="shift"):
        gf.affine_coupling(x, t.double(), v)
    with pytest.raises(TypeError, match="log_scale"):
        gf.affine_coupling(x, t, v.long())
    with pytest.raises(TypeError, match="x"):
        gf.affine_coupling(x.numpy(), t, v)
    with pytest.raises(ValueError, match="clamp"):
        gf.affine_coupling(x, t, v, clamp="softplus")
    with pytest.raises(ValueError, match="clamp_value"):
        gf.affine_coupling(x, t, v, clamp="tanh", clamp_value=0.0)
    with pytest.raises(ValueError, match="clamp_value"):
        gf.affine_coupling(x, t, v, clamp="atan", clamp_value=-1.0)
    with pytest.raises(ValueError, match="clamp_value"):
        gf.affine_coupling(x, t, v, clamp_value=float("nan"))
    with pytest.raises(TypeError, match="clamp_value"):
        gf.affine_coupling(x, t, v, clamp_value="2")
    with pytest.raises(ValueError, match="x"):
        gf.affine_coupling(x[0, 0], t[0, 0], v[0, 0])
    # The reference checks identically.
    with pytest.raises(ValueError, match="clamp"):
        reference.affine_coupling(x, t, v, clamp="relu")
    with pytest.raises(ValueError, match="shift"):
        reference.affine_coupling(x, t[:, :2], v)


@pytest.mark.skipif(not NATIVE, reason="native kernels not built")
def test_force_reference_gives_same_results(monkeypatch):
    x, t, v = _inputs((5, 8), seed=13)
    a = gf.affine_coupling(x, t, v, clamp="sigmoid")
    monkeypatch.setenv("GENCORE_FORCE_REFERENCE", "1")
    b = gf.affine_coupling(x, t, v, clamp="sigmoid")
    torch.testing.assert_close(a[0], b[0], rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(a[1], b[1], rtol=1e-13, atol=1e-13)


def test_logdet_sum_accurate_for_long_rows():
    """float32 log-determinant over 2**24 elements per sample: relative error within 10x of
    torch's pairwise sum in float32 (plus one float32 ulp), both against a float64 sum."""
    g = torch.Generator().manual_seed(12)
    v = torch.rand(1, 2**24, generator=g) * 0.1 + 1.0
    x, t = torch.ones_like(v), torch.zeros_like(v)
    ref = v.double().sum().item()
    err_torch = abs(v.sum().item() - ref) / ref
    for inverse in (False, True):
        _, ld = gf.affine_coupling(x, t, v, inverse=inverse)
        err = abs(abs(ld.item()) - ref) / ref
        assert err <= 10 * err_torch + torch.finfo(torch.float32).eps, (inverse, err, err_torch)


def test_long_rows_independent_of_threads_and_batch():
    if not gencore._native.use_native(torch.zeros(1)):
        pytest.skip("a property of the native kernels (torch's own sum depends on the batch)")
    x, t, v = _inputs((6, 40001), dtype=torch.float32, seed=14)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        a = gf.affine_coupling(x, t, v, clamp="tanh")
        torch.set_num_threads(2)
        b = gf.affine_coupling(x, t, v, clamp="tanh")
    finally:
        torch.set_num_threads(old)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    for i in range(6):
        assert torch.equal(gf.affine_coupling(x[i:i + 1], t[i:i + 1], v[i:i + 1], clamp="tanh")[1], a[1][i:i + 1])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("clamp", ["atan", "tanh"])
@pytest.mark.parametrize("inverse", [False, True])
def test_low_precision_clamp_value_beyond_dtype_range(dtype, clamp, inverse):
    """clamp_value = 1e30 (inf in float16): the reference squashes in float32 like the kernels,
    so s is about 2/pi v (atan) or v (tanh) instead of 0, forward and backward."""
    x, t, v = _inputs((4, 9), scale=1.0, seed=15)
    lo = [a.to(dtype) for a in (x, t, v)]
    y64, ld64 = reference.affine_coupling(*[a.double() for a in lo], clamp=clamp, clamp_value=1e30,
                                          inverse=inverse)
    eps = torch.finfo(dtype).eps
    for fn in (reference.affine_coupling, gf.affine_coupling):
        y, ld = fn(*lo, clamp=clamp, clamp_value=1e30, inverse=inverse)
        torch.testing.assert_close(y.double(), y64, rtol=4 * eps, atol=4 * eps * float(y64.abs().max()))
        torch.testing.assert_close(ld.double(), ld64, rtol=4 * eps, atol=4 * eps * float(ld64.abs().max()))
    gy, gl = torch.ones_like(lo[0]), torch.ones(4, dtype=dtype)
    gx, gv = reference.coupling_backward(gy, gl, *lo, clamp, 1e30, inverse)
    gx64, gv64 = reference.coupling_backward(gy.double(), gl.double(), *[a.double() for a in lo], clamp, 1e30,
                                             inverse)
    torch.testing.assert_close(gx.double(), gx64, rtol=4 * eps, atol=4 * eps * float(gx64.abs().max()))
    torch.testing.assert_close(gv.double(), gv64, rtol=4 * eps, atol=4 * eps * float(gv64.abs().max()))
