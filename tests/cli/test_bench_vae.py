"""The VAE benchmark's compute floor: the fused kernels on an in-cache block, scaled."""

import pytest
import torch

from gencore import _native
from gencore.bench import vae as bench_vae

pytestmark = pytest.mark.skipif(_native.lib() is None or _native.force_reference(),
                                reason="needs the native kernels")


def _data():
    g = torch.Generator().manual_seed(0)
    mu, lv, gz = (torch.randn(512, 64, generator=g) for _ in range(3))
    return mu, lv, gz, torch.randn(512, generator=g)


def test_compute_floor_times_the_kernels():
    fb, f = bench_vae.compute_floor(*_data(), threads=1, rows=64, repeat=5)
    assert 0 < f < fb < 1.0


def test_compute_floor_scales_to_the_batch_and_threads(monkeypatch):
    calls = []
    monkeypatch.setattr(bench_vae, "time_fn", lambda fn, **kw: calls.append(fn()) or 1.0)
    fb, f = bench_vae.compute_floor(*_data(), threads=2, rows=64, repeat=5)
    assert len(calls) == 2  # forward and backward, each timed once
    assert (fb, f) == (2 * 512 / 64 / 2, 512 / 64 / 2)


def test_compute_floor_needs_native_float32(monkeypatch):
    mu, lv, gz, gk = _data()
    assert bench_vae.compute_floor(mu.double(), lv.double(), gz.double(), gk.double(), threads=1) is None
    monkeypatch.setenv("GENCORE_FORCE_REFERENCE", "1")
    assert bench_vae.compute_floor(mu, lv, gz, gk, threads=1) is None
