from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from sklearn.naive_bayes import GaussianNB as SkNB

from gencore.data.digits import load_digits
from gencore.naive_bayes import GaussianNB

METHODS = ("predict_proba", "predict_log_proba", "predict_joint_log_proba")


def _blobs(seed, n=300, d=5, k=4):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    X = rng.normal(size=(n, d)) * rng.uniform(0.3, 3.0, size=(k, d))[y] + rng.normal(size=(k, d))[y] * 2
    return X, y


def _assert_same(ours, sk, X, atol=1e-8):
    for m in METHODS:
        a = getattr(ours, m)(X).numpy()
        b = getattr(sk, m)(X)
        np.testing.assert_allclose(a, b, rtol=0, atol=atol if m == "predict_proba" else 1e-8 * max(1, np.abs(b).max()))
    np.testing.assert_array_equal(ours.predict(X).numpy(), sk.predict(X))
    for attr in ("theta_", "var_", "class_prior_", "class_count_", "classes_"):
        np.testing.assert_allclose(getattr(ours, attr).numpy(), getattr(sk, attr), rtol=1e-12, atol=1e-12)
    assert ours.epsilon_ == pytest.approx(sk.epsilon_, rel=1e-12)


@pytest.mark.parametrize("var_smoothing", [1e-9, 1e-3, 0.5])
def test_fit_matches_sklearn(var_smoothing):
    X, y = _blobs(0)
    Xt, _ = _blobs(1)
    ours = GaussianNB(var_smoothing=var_smoothing).fit(X, y)
    sk = SkNB(var_smoothing=var_smoothing).fit(X, y)
    _assert_same(ours, sk, Xt)


def test_priors_and_sample_weight_match_sklearn():
    X, y = _blobs(2)
    w = np.random.default_rng(3).uniform(0, 2, len(y))
    pri = [0.1, 0.2, 0.3, 0.4]
    ours = GaussianNB(priors=pri).fit(torch.from_numpy(X), torch.from_numpy(y), sample_weight=w)
    sk = SkNB(priors=pri).fit(X, y, sample_weight=w)
    _assert_same(ours, sk, X)


def test_partial_fit_sequence_matches_sklearn():
    X, y = _blobs(4, n=400)
    ours, sk = GaussianNB(var_smoothing=1e-2), SkNB(var_smoothing=1e-2)
    cuts = [0, 30, 60, 61, 200, 400]
    w = np.random.default_rng(5).uniform(0.5, 1.5, len(y))
    for i, (a, b) in enumerate(itertools.pairwise(cuts)):
        kw = {"classes": np.arange(4)} if i == 0 else {}
        sw = w[a:b] if i % 2 else None
        ours.partial_fit(X[a:b], y[a:b], sample_weight=sw, **kw)
        sk.partial_fit(X[a:b], y[a:b], sample_weight=sw, **kw)
        _assert_same(ours, sk, X)


def test_digits_accuracy_equals_sklearn():
    Xtr, ytr = load_digits("train", flatten=True, dtype=torch.float64)
    Xte, yte = load_digits("test", flatten=True, dtype=torch.float64)
    ours = GaussianNB().fit(Xtr, ytr)
    sk = SkNB().fit(Xtr.numpy(), ytr.numpy())
    assert ours.score(Xte, yte) == sk.score(Xte.numpy(), yte.numpy())
    np.testing.assert_array_equal(ours.predict(Xte).numpy(), sk.predict(Xte.numpy()))
    np.testing.assert_allclose(ours.predict_proba(Xte).numpy(), sk.predict_proba(Xte.numpy()), atol=1e-8, rtol=0)


def _shared_variance_data():
    rng = np.random.default_rng(6)
    x0 = rng.normal(size=(40, 3)) * [1.0, 2.0, 0.5]
    shifts = np.array([[0, 0, 0], [2, -1, 0.5], [-1, 3, 1]])
    X = np.concatenate([x0 + s for s in shifts])
    y = np.repeat(np.arange(3), 40)
    return X, y


def test_to_linear_exact_with_shared_variance():
    X, y = _shared_variance_data()
    nb = GaussianNB(priors=[0.2, 0.3, 0.5]).fit(X, y)
    W, b = nb.to_linear()
    Xt = torch.from_numpy(np.random.default_rng(7).normal(size=(50, 3)) * 3)
    logits = Xt @ W.T + b
    jll = nb.predict_joint_log_proba(Xt)
    torch.testing.assert_close(logits - logits[:, :1], jll - jll[:, :1], rtol=0, atol=1e-8)
    torch.testing.assert_close(torch.softmax(logits, 1), nb.predict_proba(Xt), rtol=0, atol=1e-10)


def test_to_linear_refuses_unshared_variance_and_pooled_is_the_tied_model():
    X, y = _blobs(8)
    nb = GaussianNB().fit(X, y)
    with pytest.raises(ValueError, match="pooled"):
        nb.to_linear()
    W, b = nb.to_linear(pooled=True)
    tied = GaussianNB().fit(X, y)
    pooled = (tied.class_count_[:, None] * tied.var_).sum(0) / tied.class_count_.sum()
    tied.var_ = pooled.expand_as(tied.var_).clone()
    Xt = torch.from_numpy(X)
    logits = Xt @ W.T + b
    jll = tied.predict_joint_log_proba(Xt)
    torch.testing.assert_close(logits - logits[:, :1], jll - jll[:, :1], rtol=0, atol=1e-8)


def test_sample_matches_class_gaussians():
    X, y = _blobs(9, n=600, d=3, k=3)
    nb = GaussianNB().fit(X, y)
    Xs, ys = nb.sample(20000, y=2, seed=1)
    assert (ys == 2).all()
    assert torch.allclose(Xs.mean(0), nb.theta_[2], atol=0.1)
    assert torch.allclose(Xs.var(0), nb.var_[2], rtol=0.05)
    _, ys2 = nb.sample(20000, seed=1)
    freq = torch.bincount(ys2, minlength=3).double() / 20000
    assert torch.allclose(freq, nb.class_prior_, atol=0.015)
    a, _ = nb.sample(10, y=torch.arange(10) % 3, seed=4)
    b, _ = nb.sample(10, y=torch.arange(10) % 3, seed=4)
    assert torch.equal(a, b)


def test_bad_input():
    X, y = _blobs(10)
    with pytest.raises(ValueError, match="classes"):
        GaussianNB().partial_fit(X, y)
    nb = GaussianNB().partial_fit(X, y, classes=[0, 1, 2, 3])
    before = nb.predict_joint_log_proba(X)
    with pytest.raises(ValueError, match="y holds labels"):
        nb.partial_fit(X[:3], [0, 1, 7])
    assert torch.equal(nb.predict_joint_log_proba(X), before)  # a rejected batch changes nothing
    with pytest.raises(ValueError, match="X must be finite"):
        GaussianNB().fit(np.array([[np.nan, 1.0], [0, 1]]), [0, 1])
    with pytest.raises(ValueError, match="var_smoothing"):
        GaussianNB(var_smoothing=-1).fit(X, y)
    with pytest.raises(ValueError, match="priors"):
        GaussianNB(priors=[0.5, 0.5]).fit(X, y)
    with pytest.raises(ValueError, match="y holds labels"):
        nb.sample(3, y=9)
    with pytest.raises(ValueError, match="features"):
        nb.predict(X[:, :2])
    with pytest.raises(RuntimeError, match="not fitted"):
        GaussianNB().predict(X)
