"""Counter-based noise (Philox4x32-10): values that depend only on (seed, stream, sample, element).

Element ``j`` of sample ``i`` is a pure function of ``(seed, stream, sample_offset + i, j)``:
batch size, thread count, device and process count never change a value. Sample 17 of a run
is the same whether it was drawn in a batch of 1, 64 or on rank 3 of 8.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from gencore import _native
from gencore._validate import check_index, check_seed
from gencore.rng import reference

__all__ = ["fill_", "from_signed64", "philox", "rand", "randn", "to_signed64"]


def to_signed64(seed: int) -> int:
    """Maps [0, 2**64) onto int64 (custom-op schemas carry int64)."""
    return seed - 2**64 if seed >= 2**63 else seed


def from_signed64(seed: int) -> int:
    return seed + 2**64 if seed < 0 else seed


def _fill_impl(out: torch.Tensor, seed: int, stream: int, sample_offset: int, uniform: bool) -> None:
    """The implementation of ``gencore::noise_fill_``: the native kernel, or the reference."""
    seed_u = from_signed64(seed)
    offset_u = from_signed64(sample_offset)
    n = out.shape[0] if out.dim() > 0 else 1
    if out.numel() == 0:
        return
    if not _native.use_native(out):
        reference.fill(out, seed_u, stream, offset_u, uniform)
    elif out.is_contiguous():
        _native.launch("rng_fill", out, out, n, out.numel() // n, seed_u, stream, offset_u, uniform)
    else:
        tmp = torch.empty_like(out, memory_format=torch.contiguous_format)
        _fill_impl(tmp, seed, stream, sample_offset, uniform)
        out.copy_(tmp)


@torch.library.custom_op("gencore::noise_fill_", mutates_args=("out",))
def _noise_fill_(out: torch.Tensor, seed: int, stream: int, sample_offset: int, uniform: bool) -> None:
    _fill_impl(out, seed, stream, sample_offset, uniform)


def fill_(out: torch.Tensor, *, seed: int, stream: int = 0, sample_offset: int = 0,
          uniform: bool = False) -> torch.Tensor:
    """Fills ``out`` in place with noise-contract draws (normal, or uniform in (0, 1))."""
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"out must be a torch.Tensor, got {type(out).__name__}")
    if out.dtype not in _native.FLOAT_DTYPES:
        raise TypeError(f"out must be a floating-point tensor, got {out.dtype}")
    seed = check_seed(seed)
    stream = check_index(stream, "stream", 2**32)
    sample_offset = check_index(sample_offset, "sample_offset", 2**64)
    if sample_offset + (out.shape[0] if out.dim() else 1) > 2**64:
        raise ValueError("sample_offset + batch size must stay below 2**64")
    args = (to_signed64(seed), stream, to_signed64(sample_offset), bool(uniform))
    if _native.direct_ok(out) and not out.requires_grad:
        _fill_impl(out, *args)
        torch.autograd.graph.increment_version(out)  # what the op's in-place dispatch does
    else:
        _noise_fill_(out, *args)
    return out


def _shape(size: tuple) -> tuple[int, ...]:
    if len(size) == 1 and isinstance(size[0], (Sequence, torch.Size)):
        size = tuple(size[0])
    for s in size:
        if not isinstance(s, int) or isinstance(s, bool) or s < 0:
            raise ValueError(f"shape must be non-negative integers, got {size}")
    return tuple(int(s) for s in size)


def _draw(size, seed, stream, sample_offset, device, dtype, uniform) -> torch.Tensor:
    shape = _shape(size)
    dtype = torch.float32 if dtype is None else dtype
    if dtype not in _native.FLOAT_DTYPES:
        raise TypeError(f"dtype must be a floating-point dtype, got {dtype}")
    out = torch.empty(shape, dtype=dtype, device=device)
    return fill_(out, seed=seed, stream=stream, sample_offset=sample_offset, uniform=uniform)


def randn(*size, seed: int, stream: int = 0, sample_offset: int = 0, device=None,
          dtype: torch.dtype | None = None) -> torch.Tensor:
    """Standard normals under the noise contract. The first dimension indexes samples.

    Args:
        *size: the shape, e.g. ``randn(8, 3, 32, 32, seed=0)`` or ``randn((8, 3), seed=0)``.
        seed: integer in [0, 2**64).
        stream: integer in [0, 2**32), e.g. the step index of a sampling loop.
        sample_offset: global index of the first sample (shard a batch across ranks with it).
        device, dtype: as in ``torch.randn`` (default float32).

    Example:
        >>> import gencore
        >>> a = gencore.randn(4, 3, seed=0)
        >>> b = gencore.randn(1, 3, seed=0, sample_offset=2)
        >>> bool((a[2:3] == b).all())
        True
    """
    return _draw(size, seed, stream, sample_offset, device, dtype, False)


def rand(*size, seed: int, stream: int = 0, sample_offset: int = 0, device=None,
         dtype: torch.dtype | None = None) -> torch.Tensor:
    """Uniforms in the open interval (0, 1) under the noise contract (see :func:`randn`).

    float32 uses the top 24 bits of a word (``(w >> 8) * 2**-24 + 2**-25``), float64 all 32
    (``w * 2**-32 + 2**-33``); both are exact. float16/bfloat16 round the float32 value, clamped
    to the type's largest value below 1 (and, for float16, its smallest subnormal) so that the
    result stays strictly inside (0, 1).

    Example:
        >>> import gencore
        >>> u = gencore.rand(1000, 4, seed=0)
        >>> bool((u > 0).all() and (u < 1).all())
        True
    """
    return _draw(size, seed, stream, sample_offset, device, dtype, True)


def philox(counter: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    """Philox4x32-10 words.

    Args:
        counter: int64 tensor (N, 4) of uint32 words.
        key: int64 tensor (2,) of uint32 words.

    Returns:
        int64 tensor (N, 4) with values in [0, 2**32).

    Example:
        >>> import torch, gencore
        >>> w = gencore.rng.philox(torch.zeros(1, 4, dtype=torch.int64), torch.zeros(2, dtype=torch.int64))
        >>> [hex(int(x)) for x in w[0]]
        ['0x6627e8d5', '0xe169c58d', '0xbc57ac4c', '0x9b00dbd8']
    """
    if not isinstance(counter, torch.Tensor) or counter.dtype != torch.int64:
        raise TypeError("counter must be an int64 tensor of shape (N, 4)")
    if counter.dim() != 2 or counter.shape[1] != 4:
        raise ValueError(f"counter must have shape (N, 4), got {tuple(counter.shape)}")
    if not isinstance(key, torch.Tensor) or key.dtype != torch.int64 or key.shape != (2,):
        raise TypeError("key must be an int64 tensor of shape (2,)")
    if bool(((counter < 0) | (counter > 0xFFFFFFFF)).any()) or bool(((key < 0) | (key > 0xFFFFFFFF)).any()):
        raise ValueError("counter and key words must be in [0, 2**32)")
    k0, k1 = int(key[0]), int(key[1])
    if _native.use_native():
        c = counter.detach().cpu().contiguous()
        out = torch.empty_like(c)
        _native.call("philox_words", c, k0, k1, c.shape[0], out)
        return out.to(counter.device)
    return reference.philox(counter, (k0, k1))


@_noise_fill_.register_fake
def _(out, seed, stream, sample_offset, uniform):
    return None


