"""Flow layers and models: invertibility, log-determinants against autograd Jacobians,
normalisation, gradients, save/load, conditioning and bad input."""

from __future__ import annotations

import io
import math

import pytest
import torch

import gencore.flows as gf


def _jacobian_ladj(fn, x, ctx=None):
    """log|det| of the Jacobian of ``fn(x, ctx) -> (y, ladj)`` at each sample of x (batch, *)
    via autograd (one sample at a time)."""
    out = []
    for i in range(x.shape[0]):
        xi = x[i : i + 1]
        ci = None if ctx is None else ctx[i : i + 1]
        j = torch.autograd.functional.jacobian(lambda a, ci=ci: fn(a, ci)[0].flatten(1), xi)
        j = j.reshape(xi[0].numel(), xi[0].numel())
        out.append(torch.linalg.slogdet(j)[1])
    return torch.stack(out)


def _randomize(module, seed=0, scale=0.3):
    """Non-trivial parameters (zero-initialised conditioners would make couplings identities)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return module


def _vector_layers(context=0):
    return {
        "coupling_half": gf.AffineCoupling(5, hidden=(8,), clamp="atan", context=context),
        "coupling_swap": gf.AffineCoupling(5, swap=True, hidden=(8,), clamp="tanh", context=context),
        "coupling_mask": gf.AffineCoupling(5, mask=torch.tensor([1, 0, 1, 0, 0], dtype=torch.bool),
                                           hidden=(8,), clamp=None, context=context),
        "coupling_resnet": gf.AffineCoupling(5, net="resnet", hidden=8, clamp="sigmoid", context=context),
        "actnorm": gf.ActNorm(5),
        "permutation": gf.Permutation(5, seed=1),
        "reverse": gf.Reverse(),
        "lulinear": gf.LULinear(5, seed=2),
    }


def _image_layers():
    return {
        "coupling_conv": gf.AffineCoupling(4, image=True, hidden=6, clamp="sigmoid"),
        "actnorm": gf.ActNorm(4),
        "conv1x1": gf.Invertible1x1Conv(4, seed=3),
        "squeeze": gf.Squeeze(),
        "logit": gf.LogitTransform(0.05),
    }


VECTOR = list(_vector_layers())
IMAGE = list(_image_layers())


@pytest.mark.parametrize("name", VECTOR)
@pytest.mark.parametrize("context", [0, 3])
def test_vector_layer_inverse_and_ladj(name, context):
    torch.manual_seed(0)
    layer = _randomize(_vector_layers(context)[name]).double()
    x = torch.randn(4, 5, dtype=torch.float64)
    ctx = torch.randn(4, 3, dtype=torch.float64) if context and name.startswith("coupling") else None
    z, ladj = layer(x, ctx)
    assert z.shape == x.shape and ladj.shape == (4,)
    x2, ladj_inv = layer.inverse(z, ctx)
    torch.testing.assert_close(x2, x, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ladj_inv, -ladj, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ladj, _jacobian_ladj(layer, x, ctx), rtol=1e-10, atol=1e-10)
    # The inverse's own log-determinant against its Jacobian.
    torch.testing.assert_close(ladj_inv, _jacobian_ladj(layer.inverse, z, ctx),
                               rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", IMAGE)
def test_image_layer_inverse_and_ladj(name):
    torch.manual_seed(1)
    layer = _randomize(_image_layers()[name]).double()
    x = torch.rand(2, 4, 4, 4, dtype=torch.float64) * 0.9 + 0.05
    z, ladj = layer(x)
    x2, ladj_inv = layer.inverse(z)
    torch.testing.assert_close(x2, x, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ladj_inv, -ladj, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ladj, _jacobian_ladj(layer, x), rtol=1e-10, atol=1e-10)


def test_actnorm_data_dependent_init():
    an = gf.ActNorm(3)
    x = torch.randn(500, 3, dtype=torch.float64) * torch.tensor([1.0, 5.0, 0.1], dtype=torch.float64) + 3
    an = an.double()
    z, _ = an(x)
    torch.testing.assert_close(z.mean(0), torch.zeros(3, dtype=torch.float64), atol=1e-10, rtol=0)
    # std is 1 up to the eps=1e-6 added to the smallest scale (0.1): relative 1e-5
    torch.testing.assert_close(z.std(0, unbiased=False), torch.ones(3, dtype=torch.float64), atol=2e-5, rtol=0)
    assert bool(an.initialized)
    before = an.loc.clone()
    an(x * 7)  # initialised once only
    assert torch.equal(an.loc, before)


def _flows():
    return {
        "realnvp": gf.RealNVP(3, transforms=3, hidden=(8,), clamp="atan"),
        "realnvp_half_actnorm_lu": gf.RealNVP(4, transforms=2, hidden=(8,), mask="half", actnorm=True, lu=True,
                                              clamp="tanh"),
        "realnvp_resnet_ctx": gf.RealNVP(2, transforms=2, hidden=8, net="resnet", context=2, clamp="sigmoid"),
        "glow": gf.GlowFlow((1, 4, 4), levels=2, steps=1, hidden=4),
        "glow_ctx": gf.GlowFlow((1, 4, 4), levels=2, steps=1, hidden=4, context=3, logit=False),
    }


def _data(flow, n=3, dtype=torch.float64):
    x = torch.rand(n, *flow.shape, dtype=dtype) * 0.9 + 0.05
    ctx = torch.randn(n, flow.context, dtype=dtype) if flow.context else None
    return x, ctx


@pytest.mark.parametrize("name", list(_flows()))
def test_whole_flow_inverse_and_ladj(name):
    torch.manual_seed(2)
    flow = _flows()[name].double()
    x, ctx = _data(flow)
    flow(x, ctx)  # ActNorm initialisation
    _randomize(flow, seed=5)
    z, ladj = flow(x, ctx)
    x2, ladj_inv = flow.transform.inverse(z, ctx)
    torch.testing.assert_close(x2, x, rtol=1e-11, atol=1e-11)
    torch.testing.assert_close(ladj_inv, -ladj, rtol=1e-11, atol=1e-11)
    torch.testing.assert_close(ladj, _jacobian_ladj(flow.transform, x, ctx), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", list(_flows()))
def test_every_parameter_gets_a_gradient(name):
    torch.manual_seed(3)
    flow = _flows()[name]
    x, ctx = _data(flow, n=8, dtype=torch.float32)
    flow(x, ctx)
    _randomize(flow, seed=6)  # zero-initialised output layers would block the gradient of earlier layers
    loss = -flow.log_prob(x, ctx).mean()
    loss.backward()
    for pname, p in flow.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", list(_flows()))
def test_state_dict_round_trip(name):
    torch.manual_seed(4)
    flow = _flows()[name]
    x, ctx = _data(flow, n=5, dtype=torch.float32)
    flow(x, ctx)
    _randomize(flow, seed=7)
    buf = io.BytesIO()
    torch.save(flow.state_dict(), buf)
    torch.manual_seed(99)
    fresh = _flows()[name]
    fresh.load_state_dict(torch.load(io.BytesIO(buf.getvalue())))
    assert torch.equal(flow.log_prob(x, ctx), fresh.log_prob(x, ctx))
    assert torch.equal(flow.sample(4, ctx[:4] if ctx is not None else None, seed=1),
                       fresh.sample(4, ctx[:4] if ctx is not None else None, seed=1))


def test_two_d_density_integrates_to_one():
    """Midpoint rule on a 400x400 grid over [-10, 10]^2 (spacing 0.05).

    The box's probability is measured independently from 100k samples of the flow (the samples
    outside the box bound the missing mass; standard error <= 1e-3 / 2). The midpoint rule's
    error for this smooth density is below 1e-4 (a 2x finer grid changes the integral by less
    than that). Tolerance: 5 standard errors of the sampled box mass + 1e-3.
    """
    torch.manual_seed(5)
    flow = _randomize(gf.RealNVP(2, transforms=4, hidden=(16,), clamp="atan"), seed=8, scale=0.1).double()
    m, lim = 400, 10.0
    g = (torch.arange(m, dtype=torch.float64) + 0.5) / m * 2 * lim - lim
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    pts = torch.stack([xx.flatten(), yy.flatten()], 1)
    with torch.no_grad():
        p = flow.log_prob(pts).exp()
    total = float(p.sum() * (2 * lim / m) ** 2)
    s = flow.sample(100000, seed=0)
    inside = float((s.abs().max(1).values < lim).double().mean())
    se = max((inside * (1 - inside) / 100000) ** 0.5, 1e-5)
    assert inside > 0.999  # the box holds (nearly) all the mass, so the integral is ~1
    assert abs(total - inside) < 5 * se + 1e-3, (total, inside)
    assert abs(total - 1) < 2e-3, total


def test_sample_follows_noise_contract_and_log_prob():
    torch.manual_seed(6)
    flow = _randomize(gf.RealNVP(2, transforms=2, hidden=(8,)), seed=9).double()
    a = flow.sample(6, seed=11)
    b = flow.sample(2, seed=11, sample_offset=4)
    torch.testing.assert_close(a[4:], b, rtol=0, atol=0)
    assert not torch.equal(flow.sample(6, seed=12), a)
    x, lp = flow.rsample_and_log_prob(5, seed=3)
    torch.testing.assert_close(lp, flow.log_prob(x), rtol=1e-10, atol=1e-10)
    x.sum().backward()  # reparameterised: gradients reach the parameters
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in flow.parameters())


def test_bits_per_dim_convention():
    flow = gf.GlowFlow((1, 4, 4), levels=2, steps=1, hidden=4).double()
    x = torch.rand(3, 1, 4, 4, dtype=torch.float64)
    bpd = flow.bits_per_dim(x, levels=17)
    expected = (-flow.log_prob(x) + 16 * math.log(17)) / (16 * math.log(2))
    torch.testing.assert_close(bpd, expected)


def test_conditional_flow_uses_context():
    torch.manual_seed(7)
    flow = _randomize(gf.RealNVP(2, transforms=2, hidden=(8,), context=2), seed=10)
    x = torch.randn(4, 2)
    c1, c2 = torch.zeros(4, 2), torch.ones(4, 2)
    assert not torch.allclose(flow.log_prob(x, c1), flow.log_prob(x, c2))
    # One context row broadcasts over the samples.
    torch.testing.assert_close(flow.sample(3, torch.ones(2), seed=0), flow.sample(3, torch.ones(3, 2), seed=0))


def test_native_and_reference_flows_agree(monkeypatch):
    torch.manual_seed(8)
    flow = _randomize(gf.RealNVP(4, transforms=3, hidden=(8,), clamp="sigmoid"), seed=11).double()
    x = torch.randn(16, 4, dtype=torch.float64)
    a = flow.log_prob(x)
    ga = torch.autograd.grad(a.sum(), list(flow.parameters()))
    monkeypatch.setenv("GENCORE_FORCE_REFERENCE", "1")
    b = flow.log_prob(x)
    gb = torch.autograd.grad(b.sum(), list(flow.parameters()))
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    for u, v in zip(ga, gb):
        torch.testing.assert_close(u, v, rtol=1e-10, atol=1e-10)


def test_coupling_layer_matches_zuko():
    """zuko's coupling transform (checkered mask, MLP hyper-network) as an independent oracle:
    our AffineCoupling with zuko's hyper-network as conditioner and zuko's scale squash."""
    zc = pytest.importorskip("zuko.flows.coupling")
    torch.manual_seed(9)
    features = 5
    mask = torch.arange(features) % 2 == 1
    zt = zc.GeneralCouplingTransform(features, mask=mask, hidden_features=(16,)).double()
    with torch.no_grad():
        for p in zt.parameters():
            p.add_(0.2 * torch.randn_like(p))
    n_b = int((~mask).sum())

    class FromZuko(torch.nn.Module):
        def __init__(self, hyper):
            super().__init__()
            self.hyper = hyper

        def forward(self, h):
            phi = self.hyper(h).unflatten(-1, (n_b, 2))
            raw = phi[..., 1]
            log_scale = raw / (1 + abs(raw / math.log(1e-3)))
            return torch.cat([phi[..., 0], log_scale], 1)

    ours = gf.AffineCoupling(features, mask=mask, conditioner=FromZuko(zt.hyper), clamp=None).double()
    x = torch.randn(7, features, dtype=torch.float64)
    y_z, ladj_z = zt().call_and_ladj(x)
    y, ladj = ours(x)
    torch.testing.assert_close(y, y_z, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ladj, ladj_z, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ours.inverse(y)[0], zt().inv(y_z), rtol=1e-12, atol=1e-12)


def test_bad_input():
    flow = gf.RealNVP(2, transforms=2, hidden=(8,), context=3)
    x = torch.randn(4, 2)
    with pytest.raises(ValueError, match="context"):
        flow.log_prob(x)
    with pytest.raises(ValueError, match="context"):
        flow.log_prob(x, torch.randn(4, 2))
    with pytest.raises(ValueError, match="context"):
        flow.log_prob(x, torch.randn(3, 3))
    with pytest.raises(ValueError, match="x"):
        flow.log_prob(torch.randn(4, 3), torch.randn(4, 3))
    bad = x.clone()
    bad[1, 0] = float("nan")
    with pytest.raises(ValueError, match="x"):
        flow.log_prob(bad, torch.randn(4, 3))
    with pytest.raises(ValueError, match="context"):
        gf.RealNVP(2, transforms=1).log_prob(x, torch.randn(4, 3))
    with pytest.raises(ValueError, match="n"):
        flow.sample(-1, torch.randn(3))
    with pytest.raises(ValueError, match="clamp"):
        gf.RealNVP(2, clamp="relu")
    with pytest.raises(ValueError, match="clamp_value"):
        gf.AffineCoupling(2, clamp="tanh", clamp_value=0)
    with pytest.raises(ValueError, match="features"):
        gf.RealNVP(1)
    with pytest.raises(ValueError, match="mask"):
        gf.AffineCoupling(3, mask=torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="context"):
        gf.AffineCoupling(2, context=2)(x, torch.randn(4, 5))
    with pytest.raises(ValueError, match="x"):
        gf.GlowFlow((1, 4, 4), levels=2, steps=1, hidden=4).log_prob(torch.full((2, 1, 4, 4), 1.5))
    with pytest.raises(ValueError, match="levels"):
        gf.GlowFlow((1, 6, 6), levels=2)
