from __future__ import annotations

import pytest
import torch

from gencore.models import MLP, MLPDenoiser, UNet

pytestmark = pytest.mark.usefixtures("one_thread")


def _randomize(net):
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return net


@pytest.mark.parametrize("num_classes", [0, 10])
def test_unet_shapes_and_every_parameter_gets_gradient(num_classes):
    net = _randomize(UNet(channels=8, num_classes=num_classes))
    x = torch.randn(5, 1, 8, 8)
    cond = torch.tensor([0, 1, 2, 3, 10]) if num_classes else None
    out = net(x, torch.tensor([0.0, 1, 10, 100, 999]), cond)
    assert out.shape == x.shape
    out.square().sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_unet_scalar_time_and_int_cond_broadcast():
    net = _randomize(UNet(channels=8))
    x = torch.randn(3, 1, 8, 8)
    a = net(x, 7, 4)
    b = net(x, torch.full((3,), 7.0), torch.full((3,), 4))
    torch.testing.assert_close(a, b)
    # cond=None is the null class
    torch.testing.assert_close(net(x, 7, None), net(x, 7, torch.full((3,), 10)))
    # the label changes the output; time too
    assert not torch.allclose(net(x, 7, 3), a)
    assert not torch.allclose(net(x, 8, 4), a)


def test_unet_batch_independent():
    net = _randomize(UNet(channels=8)).eval()
    x = torch.randn(6, 1, 8, 8)
    t = torch.arange(6) * 100
    y = torch.arange(6)
    full = net(x, t, y)
    part = net(x[2:4], t[2:4], y[2:4])
    torch.testing.assert_close(full[2:4], part, atol=1e-5, rtol=1e-5)


def test_mlp_denoiser_and_mlp():
    den = _randomize(MLPDenoiser(4, hidden=16, depth=2, num_classes=3))
    out = den(torch.randn(6, 4), torch.rand(6), torch.tensor([0, 1, 2, 3, 0, 1]))
    assert out.shape == (6, 4)
    out.sum().backward()
    assert all(p.grad is not None for p in den.parameters())
    assert MLP(3, 2, hidden=(8,))(torch.randn(4, 3)).shape == (4, 2)


def test_bad_input_names_argument():
    net = UNet(channels=8, num_classes=10)
    x = torch.randn(2, 1, 8, 8)
    with pytest.raises(ValueError, match="cond must hold labels"):
        net(x, 1, torch.tensor([0, 11]))
    with pytest.raises(ValueError, match="cond must hold labels"):
        net(x, 1, torch.tensor([-1, 0]))
    with pytest.raises(TypeError, match="cond"):
        net(x, 1, torch.tensor([0.5, 1.0]))
    with pytest.raises(ValueError, match="t must"):
        net(x, torch.zeros(3), None)
    with pytest.raises(ValueError, match="x must"):
        net(torch.randn(2, 3, 8, 8), 1, None)
    with pytest.raises(ValueError, match="cond must be None"):
        UNet(channels=8, num_classes=0)(x, 1, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="x must"):
        MLPDenoiser(4)(torch.randn(2, 3), 1)
