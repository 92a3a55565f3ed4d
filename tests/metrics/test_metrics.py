from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import torch

from gencore.data.digits import load_digits
from gencore.metrics import (
    bits_per_dim,
    class_accuracy,
    digits_classifier,
    digits_fd,
    frechet_distance,
    gaussian_stats,
    mmd,
    sliced_wasserstein,
)

pytestmark = pytest.mark.usefixtures("one_thread")

D = torch.float64


def _spd(d, seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=g, dtype=D)
    return a @ a.T + 0.1 * torch.eye(d, dtype=D)


def test_frechet_closed_form_diagonal_and_commuting():
    mu1, mu2 = torch.tensor([1.0, 2.0, 3.0], dtype=D), torch.tensor([0.0, -1.0, 3.5], dtype=D)
    s1, s2 = torch.tensor([1.0, 4.0, 0.25], dtype=D), torch.tensor([9.0, 1.0, 0.25], dtype=D)
    # diagonal Gaussians: |mu1 - mu2|^2 + sum (sqrt(s1) - sqrt(s2))^2
    expect = float(((mu1 - mu2) ** 2).sum() + ((s1.sqrt() - s2.sqrt()) ** 2).sum())
    assert frechet_distance(mu1, torch.diag(s1), mu2, torch.diag(s2)) == pytest.approx(expect, rel=1e-12)
    # commuting covariances (same eigenvectors): the same formula in the eigenbasis
    q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=D))
    c1, c2 = q @ torch.diag(s1) @ q.T, q @ torch.diag(s2) @ q.T
    assert frechet_distance(mu1, c1, mu2, c2) == pytest.approx(expect, rel=1e-10)


def test_frechet_matches_scipy_sqrtm_and_is_symmetric():
    mu1, mu2 = torch.randn(6, dtype=D), torch.randn(6, dtype=D)
    s1, s2 = _spd(6, 1), _spd(6, 2)
    covmean = scipy.linalg.sqrtm(s1.numpy() @ s2.numpy()).real
    ref = float(((mu1 - mu2) ** 2).sum()) + np.trace(s1.numpy() + s2.numpy() - 2 * covmean)
    ours = frechet_distance(mu1, s1, mu2, s2)
    assert ours == pytest.approx(ref, rel=1e-9)
    assert frechet_distance(mu2, s2, mu1, s1) == pytest.approx(ours, rel=1e-9)
    assert abs(frechet_distance(mu1, s1, mu1, s1)) < 1e-9
    # rank-deficient covariance (fewer samples than dimensions) stays finite and non-negative
    f = torch.randn(4, 6, dtype=D)
    m, s = gaussian_stats(f)
    assert frechet_distance(m, s, mu1, s1) >= 0


def test_sliced_wasserstein_known_cases():
    x = torch.randn(2000, 2, dtype=D)
    assert sliced_wasserstein(x, x) == 0.0
    v = torch.tensor([3.0, -4.0], dtype=D)
    # a shift by v: every projection moves by theta.v, so SW_2^2 = E(theta.v)^2 = |v|^2 / 2
    sw = sliced_wasserstein(x, x + v, n_projections=4000)
    assert sw ** 2 == pytest.approx(25 / 2, rel=0.03)
    # SW_1 of a shift: E|theta.v| = |v| * 2/pi in 2-D
    assert sliced_wasserstein(x, x + v, n_projections=4000, p=1) == pytest.approx(5 * 2 / math.pi, rel=0.03)
    # 1-D data: the exact Wasserstein-1 distance, also with unequal sizes (scipy oracle)
    a, b = torch.randn(300, 1, dtype=D), 2 + 0.5 * torch.randn(170, 1, dtype=D)
    ref = scipy.stats.wasserstein_distance(a[:, 0].numpy(), b[:, 0].numpy())
    assert sliced_wasserstein(a, b, n_projections=1, p=1) == pytest.approx(ref, rel=1e-10)


def test_mmd_closed_form_for_gaussians():
    g = torch.Generator().manual_seed(3)
    n, h = 3000, 1.0
    mu = torch.tensor([1.0, 0.5], dtype=D)
    x = torch.randn(n, 2, generator=g, dtype=D)
    y = torch.randn(n, 2, generator=g, dtype=D) + mu
    # E k for N(0, I) vs N(mu, I): differences ~ N(mu, 2I); E exp(-|z|^2/(2h^2)) closed form
    c = (h * h / (h * h + 2)) ** (2 / 2)
    expect = 2 * c * (1 - math.exp(-float(mu @ mu) / (2 * (h * h + 2))))
    assert mmd(x, y, bandwidth=h) == pytest.approx(expect, abs=0.01)
    same = mmd(x, torch.randn(n, 2, generator=g, dtype=D), bandwidth=h)
    assert abs(same) < 0.005


def test_mmd_matches_explicit_double_loop():
    x, y = torch.randn(7, 2, dtype=D), torch.randn(5, 2, dtype=D) + 1

    def k(a, b):
        return math.exp(-float(((a - b) ** 2).sum()) / (2 * 0.7 ** 2))

    sxx = sum(k(x[i], x[j]) for i in range(7) for j in range(7) if i != j) / 42
    syy = sum(k(y[i], y[j]) for i in range(5) for j in range(5) if i != j) / 20
    sxy = sum(k(x[i], y[j]) for i in range(7) for j in range(5)) / 35
    assert mmd(x, y, bandwidth=0.7) == pytest.approx(sxx + syy - 2 * sxy, rel=1e-12)


def test_digits_classifier_cached_and_accurate(tmp_path, monkeypatch):
    import gencore.metrics.digits as md

    monkeypatch.setenv("GENCORE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(md, "_MODELS", {})
    clf = digits_classifier()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert any(f.endswith(".safetensors") for f in files) and not any(f.endswith(".tmp") for f in files)
    monkeypatch.setattr(md, "_MODELS", {})
    monkeypatch.setattr(md, "train_digits_classifier", lambda **k: pytest.fail("retrained despite cache"))
    clf2 = digits_classifier()
    for a, b in zip(clf.state_dict().values(), clf2.state_dict().values()):
        assert torch.equal(a, b)
    x, y = load_digits("test", scale="symmetric")
    assert class_accuracy(x, y) > 0.95
    assert class_accuracy(x, (y + 1) % 10) < 0.05


def test_digits_fd_orders_quality():
    xv, yv = load_digits("val", scale="symmetric")
    real = digits_fd(xv)
    noisy = digits_fd((xv + 0.5 * torch.randn_like(xv)).clamp(-1, 1))
    noise = digits_fd(torch.rand(300, 1, 8, 8) * 2 - 1)
    assert 0 <= real < noisy < noise
    mixed_up = xv[yv < 3]  # three classes only: wrong class balance
    assert digits_fd(mixed_up) > real


def test_bits_per_dim():
    assert bits_per_dim(64 * math.log(2), 64) == pytest.approx(1.0)
    assert bits_per_dim(0.0, 64, bin_width=0.5) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="dims"):
        bits_per_dim(1.0, 0)


def test_bad_input_names_argument():
    x = torch.randn(10, 2)
    with pytest.raises(ValueError, match="y must be finite"):
        mmd(x, torch.full((10, 2), float("nan")))
    with pytest.raises(ValueError, match="same dimension"):
        sliced_wasserstein(x, torch.randn(10, 3))
    with pytest.raises(ValueError, match="n_projections"):
        sliced_wasserstein(x, x, n_projections=0)
    with pytest.raises(ValueError, match="bandwidth"):
        mmd(x, x, bandwidth=-1.0)
    xv, yv = load_digits("val", scale="symmetric")
    with pytest.raises(ValueError, match="labels"):
        class_accuracy(xv, yv + 5)
    with pytest.raises(ValueError, match="images must be finite"):
        digits_fd(torch.full((4, 1, 8, 8), float("inf")))
    with pytest.raises(ValueError, match="images must have shape"):
        digits_fd(torch.zeros(4, 3, 8, 8))
    with pytest.raises(ValueError, match="sigma2"):
        frechet_distance(torch.zeros(2), torch.eye(2), torch.zeros(2), torch.eye(3))
