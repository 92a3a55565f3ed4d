"""The noise contract through gencore.randn / gencore.rand: native values against the pure
PyTorch reference, invariances, statistics, argument errors, torch.compile and opcheck."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gencore
from gencore import _native
from gencore.rng import reference

native = pytest.mark.skipif(_native.lib() is None, reason="native kernels not built")

# (shape, seed, stream, sample_offset): ragged and dense sample sizes, big seeds and offsets
# whose sample index crosses 2**32 and ends right below 2**64.
CASES = [
    ((7, 5), 0, 0, 0),
    ((3, 8), 1, 1, 5),
    ((5, 1), 2**63 + 12345, 7, 2**32 - 3),
    ((2, 1030), 2**64 - 1, 2**32 - 1, 2**64 - 2),
    ((1000, 2), 2**63, 3, 2**64 - 1000),
    ((4, 3, 17), 987654321, 2**31, 2**40),
    ((6, 4, 4, 4), 42, 11, 123),
    ((40, 68), 2**64 - 1, 5, 2**32 - 20),  # 17 blocks a sample: runs cross samples and tiles
    ((3, 1000), 77, 0, 9),  # 250 blocks a sample: a tile ends mid-sample
]


def _words_from_uniform64(u: torch.Tensor) -> torch.Tensor:
    """Inverse of uniform_f64 (exact): w = u * 2**32 - 0.5."""
    return (u.double() * 2.0**32 - 0.5).to(torch.int64)


def _ulp_diff(a: torch.Tensor, b: torch.Tensor) -> int:
    """Largest distance in units in the last place between same-signed float arrays."""
    it = torch.int32 if a.dtype == torch.float32 else torch.int64
    ai, bi = a.contiguous().view(it).to(torch.int64), b.contiguous().view(it).to(torch.int64)
    return int((ai - bi).abs().max()) if a.numel() else 0


@native
@pytest.mark.parametrize("shape,seed,stream,offset", CASES)
def test_words_bit_exact_through_rand(shape, seed, stream, offset, device):
    u = gencore.rand(*shape, seed=seed, stream=stream, sample_offset=offset, dtype=torch.float64, device=device)
    n = shape[0]
    numel = int(np.prod(shape[1:]))
    words = reference.noise_words(n, numel, seed, stream, offset)[:, :numel]
    assert torch.equal(_words_from_uniform64(u.cpu()).reshape(n, numel), words)
    ref = torch.empty(shape, dtype=torch.float64)
    reference.fill(ref, seed, stream, offset, True)
    assert torch.equal(u.cpu(), ref)
    u32 = gencore.rand(*shape, seed=seed, stream=stream, sample_offset=offset, device=device)
    reference.fill(ref32 := torch.empty(shape), seed, stream, offset, True)
    assert torch.equal(u32.cpu(), ref32)


@native
@pytest.mark.parametrize("shape,seed,stream,offset", CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_normals_within_ulps_of_reference(shape, seed, stream, offset, dtype, device):
    x = gencore.randn(*shape, seed=seed, stream=stream, sample_offset=offset, dtype=dtype, device=device).cpu()
    ref = torch.empty(shape, dtype=dtype)
    reference.fill(ref, seed, stream, offset)
    assert torch.equal(torch.sign(x), torch.sign(ref))
    # CPU float32 is bit exact; float64 (libm vs torch) and CUDA (fused multiply-adds) are not.
    assert _ulp_diff(x, ref) <= 2


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_types_are_rounded_float32(dtype, device):
    x32 = gencore.randn(33, 7, seed=3, stream=1, device=device)
    x16 = gencore.randn(33, 7, seed=3, stream=1, dtype=dtype, device=device)
    assert torch.equal(x16, x32.to(dtype))
    u32 = gencore.rand(4000, 9, seed=4, device=device)
    u16 = gencore.rand(4000, 9, seed=4, dtype=dtype, device=device)
    assert torch.equal(u16, reference.clamp_unit16(u32, dtype).to(dtype))
    assert bool((u16 > 0).all()) and bool((u16 < 1).all())


def _special_floats() -> torch.Tensor:
    """Subnormals, inf, nan, signed zeros, rounding ties of float16/bfloat16 and random bits."""
    g = torch.Generator().manual_seed(0)
    rnd = torch.randint(-(2**31), 2**31, (200_000,), generator=g, dtype=torch.int64).to(torch.int32).view(torch.float32)
    h = torch.arange(0, 2**16, dtype=torch.int64).to(torch.int16)
    halves = h.view(torch.float16).float()
    bfs = h.view(torch.bfloat16).float()
    fin = lambda t: t[torch.isfinite(t)]
    hv, bv = torch.sort(fin(halves)).values, torch.sort(fin(bfs)).values
    # Midpoints between neighbouring representable values: exact float32 ties.
    ties = torch.cat([(hv[1:] + hv[:-1]) / 2, (bv[1:] + bv[:-1]) / 2])
    ties_nudged = torch.cat([torch.nextafter(ties, torch.full_like(ties, float("inf"))),
                             torch.nextafter(ties, torch.full_like(ties, -float("inf")))])
    special = torch.tensor([0.0, -0.0, float("inf"), -float("inf"), float("nan"), 65504.0, 65520.0, 65519.996,
                            -65520.0, 6.0e-8, 2.0**-24, 2.0**-25, 2.0**-26, 1.0e-40, -1.0e-45, 3.4e38])
    f32_sub = torch.tensor([1, 2, 3, 0x7FFFFF, 0x400000], dtype=torch.int32).view(torch.float32)
    return torch.cat([rnd, halves, bfs, ties, ties_nudged, special, f32_sub, -f32_sub])


@native
@pytest.mark.parametrize("dtype,code", [(torch.float16, 2), (torch.bfloat16, 3)])
def test_cast_helpers_match_torch(dtype, code):
    lib = _native.lib()
    # Special values, then a million random float32 bit patterns (every exponent, NaNs included).
    bits = torch.randint(-2**31, 2**31, (2**20,), generator=torch.Generator().manual_seed(0), dtype=torch.int64)
    src = torch.cat([_special_floats(), bits.to(torch.int32).view(torch.float32)]).contiguous()
    out = torch.empty(src.shape, dtype=dtype)
    lib.cast_from_float(src.data_ptr(), out.data_ptr(), code, src.numel())
    expected = src.to(dtype)
    nan = torch.isnan(expected)
    assert torch.equal(torch.isnan(out), nan)
    assert torch.equal(out[~nan].view(torch.int16), expected[~nan].view(torch.int16))  # signed zeros too
    # Every 16-bit pattern back to float32.
    allbits = torch.arange(0, 2**16, dtype=torch.int64).to(torch.int16).view(dtype).contiguous()
    back = torch.empty(allbits.shape, dtype=torch.float32)
    lib.cast_to_float(allbits.data_ptr(), code, back.data_ptr(), allbits.numel())
    ref = allbits.float()
    nan = torch.isnan(ref)
    assert torch.equal(torch.isnan(back), nan)
    assert torch.equal(back[~nan].view(torch.int32), ref[~nan].view(torch.int32))


@pytest.mark.parametrize("tail", [(5,), (3, 4), (2,), (1,), (1030,)])
@pytest.mark.parametrize("fn", [gencore.randn, gencore.rand])
def test_batch_and_offset_invariance(tail, fn, device):
    big = fn(64, *tail, seed=9, stream=2, device=device)
    one = fn(1, *tail, seed=9, stream=2, sample_offset=17, device=device)
    assert torch.equal(big[17:18], one)
    mid = fn(10, *tail, seed=9, stream=2, sample_offset=30, device=device)
    assert torch.equal(big[30:40], mid)


def test_thread_count_invariance():
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        a = gencore.randn(301, 1001, seed=5)
        b = gencore.rand(3000, 7, seed=5)
        c = gencore.randn(301, 1000, seed=5)
        torch.set_num_threads(2)
        a2 = gencore.randn(301, 1001, seed=5)
        b2 = gencore.rand(3000, 7, seed=5)
        c2 = gencore.randn(301, 1000, seed=5)
    finally:
        torch.set_num_threads(old)
    assert torch.equal(a, a2)
    assert torch.equal(b, b2)
    assert torch.equal(c, c2)


def test_non_contiguous_out(device):
    expected = gencore.randn(6, 10, seed=1, stream=4, device=device)
    base = torch.zeros(10, 6, device=device)
    view = base.t()  # (6, 10), not contiguous
    gencore.rng.fill_(view, seed=1, stream=4)
    assert torch.equal(view, expected)
    strided = torch.zeros(6, 20, device=device)[:, ::2]
    gencore.rng.fill_(strided, seed=1, stream=4)
    assert torch.equal(strided, expected)


def test_empty_and_scalar_shapes():
    assert gencore.randn(0, 5, seed=1).shape == (0, 5)
    assert gencore.randn(4, 0, seed=1).shape == (4, 0)
    s = gencore.randn((), seed=1)
    assert s.shape == () and torch.equal(s.reshape(1), gencore.randn(1, seed=1))


# ---- statistics (one million draws; bounds are 5 standard errors: false alarm ~1e-6) -------
N = 1_000_000


@pytest.fixture(scope="module")
def normals() -> np.ndarray:
    return gencore.randn(N // 4, 4, seed=2024, stream=1).flatten().double().numpy()


def test_normal_moments_and_tails(normals):
    from scipy import stats

    x = normals
    assert abs(x.mean()) < 5 / np.sqrt(N)
    assert abs(x.var() - 1) < 5 * np.sqrt(2 / N)  # var of the sample variance: 2 / N
    skew_se, kurt_se = np.sqrt(6 / N), np.sqrt(24 / N)
    assert abs(stats.skew(x)) < 5 * skew_se
    assert abs(stats.kurtosis(x)) < 5 * kurt_se
    for a in (1.0, 2.0, 3.0, 4.0):
        p = 2 * stats.norm.sf(a)
        phat = np.mean(np.abs(x) > a)
        assert abs(phat - p) < 5 * np.sqrt(p * (1 - p) / N), (a, phat, p)


def test_normal_ks(normals):
    from scipy import stats

    res = stats.kstest(normals, "norm")
    # Critical value of the KS statistic at alpha = 1e-3 is about 1.95 / sqrt(N).
    assert res.statistic < 1.95 / np.sqrt(N)
    assert res.pvalue > 1e-3


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_uniform_open_interval_and_ks(dtype):
    from scipy import stats

    u = gencore.rand(N // 8, 8, seed=77, dtype=dtype)
    assert bool((u > 0).all()) and bool((u < 1).all())
    x = u.flatten().double().numpy()
    assert abs(x.mean() - 0.5) < 5 * np.sqrt(1 / 12 / N)
    assert stats.kstest(x, "uniform").pvalue > 1e-3


def _corr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(np.corrcoef(a.flatten().double().numpy(), b.flatten().double().numpy())[0, 1])


def test_independence_between_streams_seeds_samples_and_elements():
    n = 250_000
    bound = 5 / np.sqrt(n)
    x0 = gencore.randn(n, seed=11, stream=0)
    assert abs(_corr(x0, gencore.randn(n, seed=11, stream=1))) < bound
    assert abs(_corr(x0, gencore.randn(n, seed=12, stream=0))) < bound
    assert abs(_corr(x0, gencore.randn(n, seed=11, stream=0, sample_offset=1))) < bound
    rows = gencore.randn(n // 4, 4, seed=3)
    assert abs(_corr(rows[:-1], rows[1:])) < 5 / np.sqrt(rows[1:].numel())  # adjacent samples
    for i, j in ((0, 1), (1, 2), (2, 3), (0, 2)):  # Box-Muller partners and neighbours
        assert abs(_corr(rows[:, i], rows[:, j])) < 5 / np.sqrt(rows.shape[0])
    # Squares too: Box-Muller pairs share a radius, which correlation of values would not see.
    assert abs(_corr(rows[:, 0] ** 2, rows[:, 1] ** 2)) < 5 / np.sqrt(rows.shape[0])


# ---- argument errors -----------------------------------------------------------------------


@pytest.mark.parametrize("fn", [gencore.randn, gencore.rand])
def test_argument_errors(fn):
    with pytest.raises(TypeError, match="seed"):
        fn(3, seed=1.5)
    with pytest.raises(TypeError, match="seed"):
        fn(3, seed="7")
    with pytest.raises(TypeError, match="seed"):
        fn(3, seed=None)
    with pytest.raises(ValueError, match="seed"):
        fn(3, seed=-1)
    with pytest.raises(ValueError, match="seed"):
        fn(3, seed=2**64)
    with pytest.raises(ValueError, match="stream"):
        fn(3, seed=0, stream=-1)
    with pytest.raises(ValueError, match="stream"):
        fn(3, seed=0, stream=2**32)
    with pytest.raises(ValueError, match="sample_offset"):
        fn(3, seed=0, sample_offset=-2)
    with pytest.raises(ValueError, match="sample_offset"):
        fn(3, seed=0, sample_offset=2**64 - 2)  # 3 samples would pass 2**64
    with pytest.raises(TypeError, match="dtype"):
        fn(3, seed=0, dtype=torch.int64)
    with pytest.raises(ValueError, match="shape"):
        fn(-1, seed=0)
    with pytest.raises(TypeError, match="out"):
        gencore.rng.fill_(torch.zeros(3, dtype=torch.int32), seed=0)


def test_largest_valid_arguments():
    x = gencore.randn(2, 3, seed=2**64 - 1, stream=2**32 - 1, sample_offset=2**64 - 2)
    ref = torch.empty(2, 3)
    reference.fill(ref, 2**64 - 1, 2**32 - 1, 2**64 - 2)
    assert torch.equal(x, ref)


# ---- torch.compile and opcheck --------------------------------------------------------------


def test_torch_compile_fullgraph():
    def f(x):
        return x + gencore.randn(x.shape, seed=3, stream=1) * gencore.rand(x.shape, seed=4)

    x = torch.randn(5, 6)
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    assert torch.equal(compiled(x), f(x))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("uniform", [False, True])
def test_opcheck_noise_fill(dtype, uniform):
    out = torch.empty(4, 5, dtype=dtype)
    torch.library.opcheck(torch.ops.gencore.noise_fill_.default, (out, 123, 2, 7, uniform))
    big = torch.empty(3, 2, dtype=dtype)
    torch.library.opcheck(torch.ops.gencore.noise_fill_.default, (big, -5, 0, -(2**63), uniform))


def test_reference_mode_matches_native(monkeypatch):
    x = gencore.randn(9, 5, seed=8, stream=3, sample_offset=2)
    monkeypatch.setenv("GENCORE_FORCE_REFERENCE", "1")
    y = gencore.randn(9, 5, seed=8, stream=3, sample_offset=2)
    assert torch.equal(x, y)
