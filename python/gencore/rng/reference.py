"""Pure-PyTorch twin of the counter-based noise: the same uint32 words bit for bit (int64
arithmetic), and the same Box-Muller with the same polynomials and operation order."""

from __future__ import annotations

import torch

__all__ = ["clamp_unit16", "fill", "noise_words", "normal", "philox", "uniform"]

_MASK = 0xFFFFFFFF
_M0, _M1 = 0xD2511F53, 0xCD9E8D57
_W0, _W1 = 0x9E3779B9, 0xBB67AE85


def _mulhilo(a: int, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(hi, lo) words of the 64-bit product a * b without overflowing int64."""
    ah, al = a >> 16, a & 0xFFFF
    p_hi = b * ah  # < 2**48
    p_lo = b * al  # < 2**48
    hi = (p_hi + (p_lo >> 16)) >> 16
    lo = (((p_hi & 0xFFFF) << 16) + p_lo) & _MASK
    return hi, lo


def philox(counter: torch.Tensor, key: torch.Tensor | tuple[int, int]) -> torch.Tensor:
    """Philox4x32-10 on int64 words. counter: (N, 4), key: (2,). Returns (N, 4) words."""
    c0, c1, c2, c3 = (counter[:, q].to(torch.int64) & _MASK for q in range(4))
    k0, k1 = (int(k) & _MASK for k in key)
    for _ in range(10):
        hi0, lo0 = _mulhilo(_M0, c0)
        hi1, lo1 = _mulhilo(_M1, c2)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
        k0 = (k0 + _W0) & _MASK
        k1 = (k1 + _W1) & _MASK
    return torch.stack((c0, c1, c2, c3), dim=1)


def noise_words(n: int, numel: int, seed: int, stream: int, sample_offset: int, device=None) -> torch.Tensor:
    """Words (n, 4 * ceil(numel / 4)) of the noise contract for samples sample_offset + i."""
    nb = (numel + 3) // 4
    samples = torch.arange(n, dtype=torch.int64, device=device) + 0  # i
    # sample_offset may exceed int64 range when added: do it in two 32-bit words.
    off_lo, off_hi = sample_offset & _MASK, sample_offset >> 32
    lo = samples + off_lo
    hi = (lo >> 32) + off_hi
    lo = lo & _MASK
    hi = hi & _MASK
    blocks = torch.arange(nb, dtype=torch.int64, device=device)
    counter = torch.stack(
        (
            blocks.repeat(n),
            lo.repeat_interleave(nb),
            hi.repeat_interleave(nb),
            torch.full((n * nb,), stream & _MASK, dtype=torch.int64, device=device),
        ),
        dim=1,
    )
    words = philox(counter, (seed & _MASK, seed >> 32))
    return words.reshape(n, nb * 4)


def uniform(words: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    if dtype == torch.float64:
        return words.to(torch.float64) * 2.3283064365386963e-10 + 1.1641532182693481e-10
    return (words >> 8).to(torch.float32) * 5.9604644775390625e-08 + 2.98023223876953125e-08


def _log_unit_f32(x: torch.Tensor) -> torch.Tensor:
    u = x.view(torch.int32).to(torch.int64) & _MASK
    e = ((u >> 23) - 127).to(torch.float32)
    m = ((u & 0x007FFFFF) | 0x3F800000).to(torch.int32).view(torch.float32)
    big = m > 1.41421356237
    m = torch.where(big, m * 0.5, m)
    e = torch.where(big, e + 1.0, e)
    f = m - 1.0
    z = f * f
    y = torch.full_like(f, 7.0376836292e-2)
    for c in (-1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1, 1.4249322787e-1,
              -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1):
        y = y * f + c
    y = y * f * z
    y = y + torch.tensor(-2.12194440e-4, dtype=torch.float32) * e
    y = y + -0.5 * z
    r = f + y
    return r + torch.tensor(0.693359375, dtype=torch.float32) * e


def _sincos_2pi_f32(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    q = torch.floor(u * 4.0 + 0.5)
    t = u - q * 0.25
    a = t * torch.tensor(6.28318530717958647692, dtype=torch.float32)
    a2 = a * a
    ps = torch.full_like(a, -1.9515295891e-4)
    ps = ps * a2 + 8.3321608736e-3
    ps = ps * a2 - 1.6666654611e-1
    sa = a + a * a2 * ps
    pc = torch.full_like(a, 2.443315711809948e-5)
    pc = pc * a2 - 1.388731625493765e-3
    pc = pc * a2 + 4.166664568298827e-2
    ca = 1.0 - 0.5 * a2 + a2 * a2 * pc
    qi = q.to(torch.int64) & 3
    odd = (qi & 1) == 1
    s1 = torch.where(odd, ca, sa)
    c1 = torch.where(odd, sa, ca)
    s = torch.where((qi & 2) != 0, -s1, s1)
    c = torch.where(((qi + 1) & 2) != 0, -c1, c1)
    return s, c


def _sqrt_f32(x: torch.Tensor) -> torch.Tensor:
    """Correctly rounded float32 square root (torch's CPU kernel is not; through float64 it is,
    since 53 >= 2 * 24 + 2 makes the double rounding harmless)."""
    return torch.sqrt(x.to(torch.float64)).to(torch.float32)


def normal(words: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Standard normals from words (..., 4k): Box-Muller on pairs (0, 1) and (2, 3) of each block."""
    w = words.reshape(*words.shape[:-1], -1, 4)
    if dtype == torch.float64:
        u = uniform(w, torch.float64)
        r0 = torch.sqrt(-2.0 * torch.log(u[..., 0]))
        r1 = torch.sqrt(-2.0 * torch.log(u[..., 2]))
        a0 = 6.283185307179586476925 * u[..., 1]
        a1 = 6.283185307179586476925 * u[..., 3]
        out = torch.stack((r0 * torch.cos(a0), r0 * torch.sin(a0), r1 * torch.cos(a1), r1 * torch.sin(a1)), -1)
    else:
        u = uniform(w, torch.float32)
        r0 = _sqrt_f32(-2.0 * _log_unit_f32(u[..., 0]))
        r1 = _sqrt_f32(-2.0 * _log_unit_f32(u[..., 2]))
        s0, c0 = _sincos_2pi_f32(u[..., 1])
        s1, c1 = _sincos_2pi_f32(u[..., 3])
        out = torch.stack((r0 * c0, r0 * s0, r1 * c1, r1 * s1), -1)
    return out.reshape(words.shape)


def fill(out: torch.Tensor, seed: int, stream: int, sample_offset: int, uniform_: bool = False) -> None:
    """Writes noise-contract draws into ``out`` (first dimension = samples)."""
    n = out.shape[0] if out.dim() > 0 else 1
    numel = out.numel() // n if n > 0 else 0
    if n == 0 or numel == 0:
        return
    words = noise_words(n, numel, seed, stream, sample_offset, device=out.device)
    acc = torch.float64 if out.dtype == torch.float64 else torch.float32
    vals = uniform(words, acc) if uniform_ else normal(words, acc)
    if uniform_ and out.dtype in (torch.float16, torch.bfloat16):
        vals = clamp_unit16(vals, out.dtype)
    out.copy_(vals[:, :numel].reshape(out.shape))


def clamp_unit16(u: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """float32 uniforms clamped so that rounding to ``dtype`` (float16/bfloat16) keeps them
    strictly inside (0, 1): the largest value below 1 of the type, float16's smallest subnormal."""
    hi = 0.99609375 if dtype == torch.bfloat16 else 0.99951171875
    lo = 0.0 if dtype == torch.bfloat16 else 5.9604644775390625e-08
    return u.clamp(min=lo, max=hi)
