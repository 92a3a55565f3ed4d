from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits as sk_load_digits

from gencore.data import digits


def test_split_is_stratified_disjoint_and_complete():
    idx = {s: digits.split_indices(s) for s in ("train", "val", "test")}
    allidx = torch.cat(list(idx.values()))
    assert allidx.numel() == 1797 and torch.unique(allidx).numel() == 1797
    y = torch.from_numpy(sk_load_digits().target)
    counts = torch.bincount(y, minlength=10).double()
    for s, frac in (("train", 0.70), ("val", 0.15), ("test", 0.15)):
        c = torch.bincount(y[idx[s]], minlength=10).double()
        assert (c > 0).all()
        assert ((c / counts) - frac).abs().max() < 0.01, s


def test_split_seed_changes_split_and_is_deterministic():
    a = digits.split_indices("test", split_seed=0)
    b = digits.split_indices("test", split_seed=0)
    c = digits.split_indices("test", split_seed=1)
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("scale,lo,hi", [("unit", 0.0, 1.0), ("symmetric", -1.0, 1.0), ("raw", 0.0, 16.0)])
def test_scaling_matches_sklearn_pixels(scale, lo, hi):
    x, y = digits.load_digits("all", scale=scale, flatten=True, dtype=torch.float64)
    sk = sk_load_digits()
    raw = torch.from_numpy(sk.data)
    expect = raw / 16 if scale == "unit" else (raw / 8 - 1 if scale == "symmetric" else raw)
    torch.testing.assert_close(x, expect, rtol=0, atol=1e-12)
    assert torch.equal(y, torch.from_numpy(sk.target))
    assert float(x.min()) == lo and float(x.max()) == hi


def test_dequantisation_is_uniform_within_bins_and_deterministic():
    raw, _ = digits.load_digits("train", scale="raw", flatten=True, dtype=torch.float64)
    x, _ = digits.load_digits("train", dequantize=True, seed=3, flatten=True, dtype=torch.float64)
    x2, _ = digits.load_digits("train", dequantize=True, seed=3, flatten=True, dtype=torch.float64)
    x3, _ = digits.load_digits("train", dequantize=True, seed=3, stream=1, flatten=True, dtype=torch.float64)
    assert torch.equal(x, x2) and not torch.equal(x, x3)
    u = x * 17 - raw
    assert (u > 0).all() and (u < 1).all()
    assert abs(float(u.mean()) - 0.5) < 0.01  # 80k uniforms
    # the noise of an image does not depend on the split it is loaded from
    xa, _ = digits.load_digits("all", dequantize=True, seed=3, flatten=True, dtype=torch.float64)
    torch.testing.assert_close(xa[digits.split_indices("train")], x, rtol=0, atol=0)
    xs, _ = digits.load_digits("train", dequantize=True, seed=3, scale="symmetric", flatten=True,
                               dtype=torch.float64)
    torch.testing.assert_close(xs, 2 * x - 1)


def test_batches_seeded_cover_everything():
    x = torch.arange(23)
    y = x * 10
    a = [b for b in digits.batches(x, y, batch_size=5, seed=1, epoch=2)]
    b = [b for b in digits.batches(x, y, batch_size=5, seed=1, epoch=2)]
    c = [b for b in digits.batches(x, y, batch_size=5, seed=1, epoch=3)]
    assert all(torch.equal(p[0], q[0]) for p, q in zip(a, b))
    assert not all(torch.equal(p[0], q[0]) for p, q in zip(a, c))
    assert sorted(torch.cat([t[0] for t in a]).tolist()) == list(range(23))
    assert all(torch.equal(t[1], t[0] * 10) for t in a)
    assert [len(t[0]) for t in digits.batches(x, batch_size=5, drop_last=True)] == [5] * 4


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="split"):
        digits.load_digits("bogus")
    with pytest.raises(ValueError, match="scale"):
        digits.load_digits(scale="bogus")
    with pytest.raises(ValueError, match="dequantize"):
        digits.load_digits(scale="raw", dequantize=True)
    with pytest.raises(ValueError, match="batch_size"):
        list(digits.batches(torch.zeros(3), batch_size=0))
    with pytest.raises(ValueError, match="tensors"):
        list(digits.batches(torch.zeros(3), torch.zeros(4), batch_size=2))
    with pytest.raises(ValueError, match="x must be finite"):
        digits.check_finite(torch.tensor([1.0, float("nan")]), "x")
    with pytest.raises(ValueError, match="y must hold labels"):
        digits.check_labels(torch.tensor([0, 10]), 10, "y")
    with pytest.raises(TypeError, match="y must hold integer"):
        digits.check_labels(torch.tensor([0.5]), 10, "y")
    assert torch.equal(digits.check_labels(3, 10, "y", n=2), torch.tensor([3, 3]))
    assert torch.equal(digits.check_labels(np.array([1, 2]), 10, "y"), torch.tensor([1, 2]))
