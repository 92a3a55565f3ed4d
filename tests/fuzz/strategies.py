"""Hypothesis strategies for the fused ops' arguments: step tensors, coefficients, noise
arguments and ``out=`` buffers (fresh, aliased, partially overlapping, malformed)."""

from __future__ import annotations

import math

import torch
from fuzzlib import FLOATS, WRONG_DTYPES, garbage, per_sample, realize, shapes, tensor_spec
from hypothesis import strategies as st

__all__ = ["OUT_KINDS", "build_step", "chaos", "coefficient", "indices", "make_out", "maybe", "noise_args",
           "other_tensor", "seeds", "step_tensors"]

PREDICTIONS = ("epsilon", "v_prediction", "sample", "flow")
VALID_OUT = ("none", "none", "none", "none", "fresh", "fresh", "list", "alias_sample", "alias_model")
BAD_OUT = ("partial", "partial", "overlap_outs", "noncontig", "wrong_dtype", "same_twice", "wrong_count")
OUT_KINDS = VALID_OUT + BAD_OUT


def chaos() -> st.SearchStrategy:
    """Whether an example may carry invalid arguments (one in three); the others are valid calls,
    so that most examples reach the kernels."""
    return st.integers(0, 2).map(lambda i: i == 0)


def maybe(bad: bool, valid: st.SearchStrategy, invalid: st.SearchStrategy, p: int = 5) -> st.SearchStrategy:
    """``valid``, or when ``bad`` about one draw in ``p`` from ``invalid``."""
    if not bad:
        return valid
    return st.integers(0, p - 1).flatmap(lambda i: invalid if i == 0 else valid)


def seeds(bad: bool = True) -> st.SearchStrategy:
    valid = st.one_of(st.integers(0, 2**64 - 1), st.sampled_from((0, 1, 2**63, 2**64 - 1)))
    return maybe(bad, valid, st.sampled_from((-1, 2**64, 1.5, "0", None, True, math.nan)))


def indices(upper: int, bad: bool = True) -> st.SearchStrategy:
    valid = st.one_of(st.just(0), st.just(0), st.integers(0, upper - 1), st.just(upper - 1))
    return maybe(bad, valid, st.sampled_from((upper, -1, 1.5, "3", None, True)))


@st.composite
def other_tensor(draw, shape, dtype, bad: bool = False, **kw):
    """A tensor meant to match the sample: its shape and dtype, or (``bad``) sometimes not."""
    k = draw(st.integers(0, 9)) if bad else 9
    if k == 0:
        dtype = draw(st.sampled_from(FLOATS + WRONG_DTYPES))
    elif k == 1:
        shape = draw(shapes())
    return draw(tensor_spec(shape, dtype, **kw))


@st.composite
def coefficient(draw, batch: int, lo: float, hi: float, edges=(), bad: bool = False):
    """A step coefficient: a float in [lo, hi] (edges often), a per-sample tensor, or garbage."""
    valid = st.one_of(st.floats(lo, hi, allow_nan=False), st.sampled_from((lo, hi, *edges)))
    k = draw(st.integers(0, 4))
    if k == 0 and batch > 0:
        return draw(per_sample(batch, lo, hi, bad))
    return draw(garbage(valid, p=6) if bad else valid)


@st.composite
def noise_args(draw, shape, dtype, bad: bool = False):
    """(noise spec or None, seed or None, stream, sample_offset): exactly one source unless ``bad``."""
    k = draw(st.integers(0, 9))
    both_or_none = bad and k == 9
    noise = draw(other_tensor(shape, dtype, bad)) if (k < 5) != both_or_none or (both_or_none and k % 2) else None
    seed = draw(seeds(bad)) if k >= 5 or both_or_none else None
    if both_or_none and draw(st.booleans()):
        noise = seed = None
    return noise, seed, draw(indices(2**32, bad)), draw(indices(2**63, bad))


@st.composite
def step_tensors(draw, extras=(), min_dims: int = 1, bad: bool = False):
    """(sample spec, model_output spec, uncond spec or None, guidance, prediction_type, clip,
    {extra name: spec or None}, out kind); invalid arguments only when ``bad``."""
    shape = draw(shapes(min_dims=min_dims))
    dtype = draw(maybe(bad, st.sampled_from(FLOATS), st.sampled_from(WRONG_DTYPES), p=8))
    x = draw(tensor_spec(shape, dtype))
    m = draw(other_tensor(shape, dtype, bad))
    u = draw(other_tensor(shape, dtype, bad)) if draw(st.booleans()) else None
    if u is not None:
        g = draw(maybe(bad, st.sampled_from((1.0, 0.0, 2.5, 7.5, -1.0, 1e6, math.inf)),
                       st.sampled_from(("1", None, math.nan, True, 1j))))
    else:
        g = draw(maybe(bad, st.just(1.0), st.sampled_from((2.0, "1", None))))
    pred = draw(maybe(bad, st.sampled_from(PREDICTIONS), st.sampled_from((None, "eps", 3)), p=8))
    clip = draw(maybe(bad, st.sampled_from((None, None, None, None, False, True, 0.5, 2.0, 1e30)),
                      st.sampled_from((0.0, -1.0, math.nan, "1"))))
    ex = {name: (draw(other_tensor(shape, dtype, bad)) if draw(st.integers(0, 3)) else None) for name in extras}
    out = draw(maybe(bad, st.sampled_from(VALID_OUT), st.sampled_from(BAD_OUT), p=3))
    return x, m, u, g, pred, clip, ex, out


def make_out(kind: str, x: torch.Tensor, m, n: int):
    """(sample, out): ``out`` of the given kind for a step with ``n`` outputs, built around the
    sample ``x`` (a partially overlapping buffer replaces ``x`` by a view of a larger one)."""
    if kind == "none" or not isinstance(x, torch.Tensor) or x.dim() == 0:
        return x, None
    fresh = lambda: torch.empty(x.shape, dtype=x.dtype)
    if kind == "fresh":
        return x, tuple(fresh() for _ in range(n))
    if kind == "list":
        return x, [fresh() for _ in range(n)]
    if kind == "alias_sample":
        x = x.contiguous()
        return x, (x, *(fresh() for _ in range(n - 1)))
    if kind == "alias_model":
        if isinstance(m, torch.Tensor) and m.is_contiguous():
            return x, (*(fresh() for _ in range(n - 1)), m)
        return x, tuple(fresh() for _ in range(n))
    if kind == "partial":
        numel = x.numel()
        buf = torch.zeros(numel + 1, dtype=x.dtype)
        buf[:numel] = x.reshape(-1)
        return buf[:numel].view(x.shape), (buf[1:].view(x.shape), *(fresh() for _ in range(n - 1)))
    if kind == "overlap_outs":
        buf = torch.zeros(x.numel() + 1, dtype=x.dtype)
        return x, (buf[:-1].view(x.shape), buf[1:].view(x.shape), *(fresh() for _ in range(n - 2)))
    if kind == "noncontig":
        big = torch.empty((*x.shape[:-1], 2 * x.shape[-1]), dtype=x.dtype)
        return x, (big[..., ::2], *(fresh() for _ in range(n - 1)))
    if kind == "wrong_dtype":
        other = torch.float64 if x.dtype != torch.float64 else torch.float32
        return x, (torch.empty(x.shape, dtype=other), *(fresh() for _ in range(n - 1)))
    if kind == "same_twice":
        o = fresh()
        return x, (o, o, *(fresh() for _ in range(n - 2)))
    return x, tuple(fresh() for _ in range(n + 1))  # wrong_count


def build_step(args_spec, kwargs_spec, out_kind: str, n_out: int):
    """A ``build`` function: the specs made into tensors, with the ``out=`` buffers of ``out_kind``."""

    def build():
        args = list(realize(args_spec))
        kwargs = realize(kwargs_spec)
        x, out = make_out(out_kind, args[0], args[1], n_out)
        args[0] = x
        if out is not None:
            kwargs["out"] = out
        return tuple(args), kwargs

    return build
