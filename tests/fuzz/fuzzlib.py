"""Shared machinery of the property-based fuzz tests: input strategies and the oracle.

Every fuzzed call is described by a :class:`Case`: the op, and a ``build`` function that makes
fresh arguments from the drawn parameters (so in-place ``out=`` writes of one run never leak into
the next). :func:`check` runs the case on the native kernels and, with
``GENCORE_FORCE_REFERENCE=1``, on the pure-PyTorch reference, and classifies the outcome:

- ``equal``: both paths return the same values (NaN where the other has NaN), float64 within
  1e-12 relative;
- ``close``: low-precision results differ but a float64 re-run (reference path) shows that the
  native side is within the project's tolerance (``tests/_util.py``: twice the reference's error
  plus a small atol) and has the same non-finite pattern;
- ``rejected``: both raise ``ValueError``/``TypeError`` whose message names an argument;
- ``mismatch``: the results differ beyond that (the float64 re-run says which side is wrong), or
  only one path raises;
- ``unclear``: a ``ValueError``/``TypeError`` that names no argument;
- ``crash``: any other exception;
- ``ref_wrong``: they differ and the re-run shows the reference side wrong (it rounds
  intermediates in float16/bfloat16 where the kernels use float32): a flaw of the fallback path,
  counted and reported, not a failure of the op;
- ``known``: a mismatch in an output and input region of a known open issue (``Case.known``
  names it; each has a strict-xfail regression test in ``test_known_issues.py``).

Counts per op and outcome are kept in :data:`COUNTS` and printed at the end of the session (the
fuzz conftest). Set ``GENCORE_FUZZ_SURVEY=1`` to record failures without failing the test (a
census of what the fuzzer finds); by default a mismatch, unclear error or crash fails the test
and hypothesis shrinks it to a minimal example.
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytest
import torch
from hypothesis import settings
from hypothesis import strategies as st

from _util import max_err

__all__ = [
    "COUNTS",
    "FLOATS",
    "LOW",
    "Case",
    "check",
    "dtypes",
    "fuzz_settings",
    "garbage",
    "per_sample",
    "shapes",
    "tensor_spec",
]

FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
LOW = (torch.float16, torch.bfloat16, torch.float32)
WRONG_DTYPES = (torch.int64, torch.int32, torch.bool, torch.complex64, torch.float8_e4m3fn, torch.uint8)
SURVEY = os.environ.get("GENCORE_FUZZ_SURVEY", "") not in ("", "0")

COUNTS: dict[str, Counter] = {}
FAILURES = ("mismatch", "unclear", "crash")


def fuzz_settings(weight: float = 1.0) -> settings:
    """The active profile's settings (``ci`` by default, ``long`` for long runs; see
    ``tests/conftest.py``) with ``max_examples`` scaled by ``weight`` and no deadline."""
    base = settings.default.max_examples
    return settings(max_examples=max(10, int(base * weight)), deadline=None)


# ---------------------------------------------------------------- strategies

def dtypes(wrong: float = 0.05) -> st.SearchStrategy:
    """A floating dtype, or (with probability about ``wrong``) a dtype the ops must reject."""
    return st.one_of(st.sampled_from(FLOATS), st.sampled_from(WRONG_DTYPES)) if wrong else st.sampled_from(FLOATS)


@st.composite
def shapes(draw, min_dims: int = 1, max_dims: int = 4, max_numel: int = 96) -> tuple[int, ...]:
    """Shapes (batch, ...): empty batches, one element, odd sizes, a zero-size sample dimension."""
    ndim = draw(st.integers(min_dims, max_dims))
    if ndim == 0:
        return ()
    batch = draw(st.sampled_from((0, 1, 1, 2, 3, 4, 5)))
    rest = [draw(st.sampled_from((1, 1, 2, 3, 4, 5, 7, 8, 0 if draw(st.integers(0, 30)) == 0 else 3)))
            for _ in range(ndim - 1)]
    while batch * math.prod(rest) > max_numel and rest:
        rest[rest.index(max(rest))] //= 2
    return (batch, *rest)


SPECIALS = (
    math.nan, math.inf, -math.inf, 0.0, -0.0, 1e-40, -1e-45, 5e-324, 6e-8, 1e-310, 65504.0, 7e4, 1e30, -3e38,
    1e300, -1e300,
)
SCALES = (1.0, 1.0, 1.0, 3.0, 1e-3, 1e3, 1e-30, 1e30)
LAYOUTS = ("contiguous", "contiguous", "contiguous", "offset", "strided", "transposed", "expanded",
           "channels_last")


@dataclass(frozen=True)
class TensorSpec:
    """How to make one tensor: shape, dtype, memory layout and values (a seed, a scale and
    non-finite/denormal/huge entries at seeded positions)."""

    shape: tuple[int, ...]
    dtype: torch.dtype
    layout: str = "contiguous"
    seed: int = 0
    scale: float = 1.0
    specials: tuple[float, ...] = ()
    positive: bool = False
    requires_grad: bool = False

    def values64(self) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed)
        n = math.prod(self.shape)
        v = torch.randn(n, generator=g, dtype=torch.float64) * self.scale
        if self.positive:
            v = v.abs()
        if n and self.specials:
            pos = torch.randint(0, n, (len(self.specials),), generator=g)
            for p, s in zip(pos.tolist(), self.specials):
                v[p] = s
        return v

    def make(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """The tensor (in ``dtype`` when given: the float64 re-run keeps values and layout)."""
        dtype = dtype or self.dtype
        v = self.values64()
        cast = (lambda t: t.to(dtype)) if dtype.is_floating_point or dtype.is_complex else (
            lambda t: t.nan_to_num(0.0, 0.0, 0.0).clamp(-100, 100).to(dtype))
        shape = self.shape
        layout = self.layout
        if layout == "transposed" and len(shape) < 2:
            layout = "strided"
        if layout in ("strided", "expanded") and len(shape) < 1:
            layout = "contiguous"
        if layout == "channels_last" and len(shape) != 4:
            layout = "transposed" if len(shape) >= 2 else "offset"
        if layout == "contiguous":
            t = cast(v).reshape(shape)
        elif layout == "offset":
            buf = torch.zeros(v.numel() + 3, dtype=dtype)
            buf[3:] = cast(v)
            t = buf[3:].view(shape)
        elif layout == "strided":
            buf = torch.zeros((*shape[:-1], 2 * shape[-1]), dtype=dtype)
            buf[..., ::2] = cast(v).reshape(shape)
            t = buf[..., ::2]
        elif layout == "transposed":
            swapped = (*shape[:-2], shape[-1], shape[-2])
            t = cast(v).reshape(swapped).transpose(-1, -2)
        elif layout == "expanded":
            t = cast(v).reshape(shape)[:1].expand(shape) if shape[0] > 0 else cast(v).reshape(shape)
        else:  # channels_last
            t = cast(v).reshape(shape).contiguous(memory_format=torch.channels_last)
        if self.requires_grad and t.dtype.is_floating_point:
            t = t.detach().requires_grad_(True)
        return t


@st.composite
def tensor_spec(draw, shape, dtype, *, special_p: int = 4, positive: bool = False,
                layouts: Sequence[str] = LAYOUTS) -> TensorSpec:
    """A :class:`TensorSpec` with the given shape and dtype; about one in ``special_p`` carries
    non-finite, denormal or huge entries."""
    specials = ()
    if draw(st.integers(0, special_p - 1)) == 0:
        specials = tuple(draw(st.lists(st.sampled_from(SPECIALS), min_size=1, max_size=3)))
    return TensorSpec(tuple(shape), dtype, draw(st.sampled_from(tuple(layouts))), draw(st.integers(0, 2**31)),
                      draw(st.sampled_from(SCALES)), specials, positive)


GARBAGE = (math.nan, math.inf, -math.inf, -1.0, -0.0, 0.0, 1e308, 5e-324, "0.5", None, True, [0.5], 1j, object())


def garbage(valid: st.SearchStrategy, p: int = 12) -> st.SearchStrategy:
    """``valid`` most of the time; about one draw in ``p`` is a garbage scalar (NaN, inf, negative,
    a string, None, a bool, a list, a complex number, an object)."""
    return st.integers(0, p - 1).flatmap(lambda i: st.sampled_from(GARBAGE) if i == 0 else valid)


@dataclass(frozen=True)
class PerSample:
    """A (batch,) coefficient tensor (a per-sample timestep), made at build time."""

    values: tuple[float, ...]
    dtype: torch.dtype = torch.float64
    shape: tuple[int, ...] | None = None

    def make(self) -> torch.Tensor:
        t = torch.tensor(self.values, dtype=torch.float64).to(self.dtype)
        return t.reshape(self.shape) if self.shape is not None else t


def per_sample(batch: int, lo: float, hi: float, bad: bool = False) -> st.SearchStrategy:
    """A float64 (batch,) tensor of values in [lo, hi] (or float32); with ``bad``, sometimes an
    integer tensor or a wrong shape."""
    vals = st.lists(st.floats(lo, hi, allow_nan=False), min_size=batch, max_size=batch).map(tuple)
    dtypes = (torch.float64, torch.float64, torch.float32, torch.float16) + ((torch.int64,) if bad else ())
    bad_shapes = ((batch, 1), (1, batch)) if bad else ()
    return st.builds(PerSample, vals, st.sampled_from(dtypes), st.sampled_from((None, None, None, *bad_shapes)))


def realize(v):
    """Spec objects into tensors, recursively through tuples, lists and dicts."""
    if isinstance(v, (TensorSpec, PerSample)):
        return v.make()
    if isinstance(v, tuple):
        return tuple(realize(x) for x in v)
    if isinstance(v, list):
        return [realize(x) for x in v]
    if isinstance(v, dict):
        return {k: realize(x) for k, x in v.items()}
    return v


# ---------------------------------------------------------------- the oracle

@dataclass
class Case:
    """One fuzzed call: ``fn(*args(), **kwargs())``; ``names`` are the words an error message may
    use to name an argument; ``to64`` turns the built (args, kwargs) into the float64 re-run's."""

    op: str
    fn: Callable
    build: Callable[[], tuple[tuple, dict]]
    names: tuple[str, ...]
    to64: Callable[[tuple, dict], tuple[tuple, dict]] | None = None
    atol: float = 1e-6
    out_arg: bool = False
    desc: object = None
    known: Callable[[int, tuple, dict], str | None] | None = None

    def __repr__(self) -> str:
        return f"Case({self.op}: {self.desc!r})"


def _outputs(res) -> list[torch.Tensor]:
    if isinstance(res, torch.Tensor):
        return [res]
    return [t for t in res if isinstance(t, torch.Tensor)]


def _run(case: Case, reference: bool):
    with pytest.MonkeyPatch.context() as mp:
        if reference:
            mp.setenv("GENCORE_FORCE_REFERENCE", "1")
        else:
            mp.delenv("GENCORE_FORCE_REFERENCE", raising=False)
        args, kwargs = case.build()
        try:
            with torch.no_grad():
                res = case.fn(*args, **kwargs)
        except Exception as exc:  # classified by the caller
            return None, exc, (args, kwargs)
        outs = [t.detach().clone() for t in _outputs(res)]
        if case.out_arg and kwargs.get("out") is not None:
            for o, r in zip(kwargs["out"], _outputs(res)):
                if o is not r:
                    return None, AssertionError("the result is not the out= tensor passed"), (args, kwargs)
        return outs, None, (args, kwargs)


def _names_argument(msg: str, names: Sequence[str]) -> bool:
    return any(re.search(r"(?<![A-Za-z0-9_])" + re.escape(n) + r"(?![A-Za-z0-9_])", msg) for n in names)


def _same(a: torch.Tensor, b: torch.Tensor, tol: float) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.numel() == 0:
        return True
    a64, b64 = a.double(), b.double()
    fa, fb = torch.isfinite(a64), torch.isfinite(b64)
    nan_a, nan_b = torch.isnan(a64), torch.isnan(b64)
    if not torch.equal(nan_a, nan_b) or not torch.equal(fa, fb):
        return False
    inf = ~fa & ~nan_a
    if not torch.equal(a64[inf], b64[inf]):
        return False
    if not fa.any():
        return True
    d = (a64[fa] - b64[fa]).abs()
    scale = torch.maximum(a64[fa].abs(), b64[fa].abs()).clamp_min(1.0)
    return bool((d <= tol * scale).all())


def _pattern(t: torch.Tensor) -> torch.Tensor:
    """0 finite, 1 NaN, 2 +inf, 3 -inf."""
    t = t.double()
    p = torch.zeros(t.shape, dtype=torch.int8)
    p[torch.isnan(t)] = 1
    p[t == math.inf] = 2
    p[t == -math.inf] = 3
    return p


def _judge_low(nat: torch.Tensor, ref: torch.Tensor, r64: torch.Tensor, atol: float) -> str | None:
    """None when the native result passes against the float64 re-run, else which side is wrong."""
    r_cast = r64.to(nat.dtype)
    pn, pr, p64 = _pattern(nat), _pattern(ref), _pattern(r_cast)
    if not torch.equal(pn, pr):
        if torch.equal(pr, p64):
            return "native (non-finite pattern differs from the float64 re-run; the reference agrees with it)"
        if torch.equal(pn, p64):
            return "reference (non-finite pattern differs from the float64 re-run; native agrees with it)"
        return "both (non-finite patterns differ from each other and from the float64 re-run)"
    fin = (pn == 0) & torch.isfinite(r64.double())
    if not fin.any():
        return None
    scale = max(1.0, r64.double()[fin].abs().max().item())
    e_nat = max_err(nat[fin], r64[fin])
    e_ref = max_err(ref[fin], r64[fin])
    if e_nat <= 2 * e_ref + atol * scale:
        return None
    return f"native (error {e_nat:.3g} vs the reference's {e_ref:.3g} against float64)"


def _classify(case: Case) -> tuple[str, str]:
    nat, e_nat, _built = _run(case, reference=False)
    ref, e_ref, _ = _run(case, reference=True)
    for e in (e_nat, e_ref):
        if e is not None and not isinstance(e, (ValueError, TypeError)):
            return "crash", f"{'native' if e is e_nat else 'reference'} raised {type(e).__name__}: {e}"
    if e_nat is not None or e_ref is not None:
        if e_nat is None or e_ref is None:
            side = "native" if e_nat is not None else "reference"
            e = e_nat or e_ref
            return "mismatch", f"only the {side} path raised {type(e).__name__}: {e}"
        for e in (e_nat, e_ref):
            if not _names_argument(str(e), case.names):
                return "unclear", f"{type(e).__name__}: {e} (names none of {case.names})"
        return "rejected", str(e_nat)
    if len(nat) != len(ref):
        return "mismatch", f"{len(nat)} outputs on the native path, {len(ref)} on the reference"
    differ = [i for i, (a, b) in enumerate(zip(nat, ref)) if not _same(a, b, 1e-12)]
    if not differ:
        return "equal", ""
    for a, b in zip(nat, ref):
        if a.shape != b.shape or a.dtype != b.dtype:
            return "mismatch", f"native {tuple(a.shape)} {a.dtype} vs reference {tuple(b.shape)} {b.dtype}"
    known = lambda i: case.known(i, *case.build()) if case.known is not None else None
    if case.to64 is None or nat[0].dtype == torch.float64:
        unknown = [i for i in differ if known(i) is None]
        if not unknown:
            return "known", known(differ[0])
        worst = max(max_err(nat[i], ref[i]) for i in unknown)
        return "mismatch", f"outputs {unknown}: native and reference differ (max error {worst:.3g})"
    r64 = _rerun(case, torch.float64)
    r32, found = None, []
    for i, (a, b, r) in enumerate(zip(nat, ref, r64)):
        verdict = _judge_low(a, b, r, case.atol)
        if verdict is not None and verdict.startswith("both") and a.dtype in (torch.float16, torch.bfloat16):
            # float64's range can answer what float32 cannot (inf times an exp that underflows in
            # float32): the kernels' float32 arithmetic, re-run on the reference, decides.
            r32 = r32 or _rerun(case, torch.float32)
            if torch.equal(_pattern(a), _pattern(r32[i].to(a.dtype))):
                verdict = "reference (rounds intermediates in the input dtype; native matches a float32 re-run)"
        if verdict is None:
            continue
        if verdict.startswith("reference"):
            found.append(("ref_wrong", f"output {i}: {verdict}"))
        elif known(i) is not None:
            found.append(("known", known(i)))
        else:
            return "mismatch", f"output {i}: {verdict}"
    for outcome in ("ref_wrong", "known"):  # a wrong reference output outranks a known issue
        for o, detail in found:
            if o == outcome:
                return o, detail
    return "close", ""


def _rerun(case: Case, dtype: torch.dtype) -> list[torch.Tensor]:
    """The case on the reference path with its floating inputs cast to ``dtype``."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GENCORE_FORCE_REFERENCE", "1")
        args, kwargs = case.to64(*case.build(), dtype=dtype)
        with torch.no_grad():
            return [t.detach() for t in _outputs(case.fn(*args, **kwargs))]


def check(case: Case) -> str:
    """Runs and classifies ``case``; counts the outcome; fails on a crash, a mismatch or an
    unclear error (unless surveying)."""
    outcome, detail = _classify(case)
    COUNTS.setdefault(case.op, Counter())[outcome] += 1
    if outcome in FAILURES:
        if SURVEY:
            COUNTS[case.op][f"{outcome}: {detail[:160]}"] += 1
        else:
            pytest.fail(f"{case.op}: {outcome}: {detail}\n{case!r}")
    return outcome


def to64_default(main: str | int = 0, noise_like: str | None = None):
    """The float64 re-run: every floating tensor (and ``out=`` dropped); a ``seed`` becomes the
    explicit float32 noise the low-precision call drew (float64 draws differ)."""

    def convert(args, kwargs, dtype=torch.float64):
        from gencore import randn

        up = lambda v: v.detach().to(dtype) if isinstance(v, torch.Tensor) and v.is_floating_point() else v
        new_args = tuple(up(a) for a in args)
        new_kwargs = {k: (tuple(up(x) for x in v) if isinstance(v, (tuple, list)) and k == "history" else up(v))
                      for k, v in kwargs.items()}
        new_kwargs.pop("out", None)
        if kwargs.get("seed") is not None:
            like = args[main] if isinstance(main, int) else kwargs[main]
            new_kwargs[noise_like or "noise"] = randn(
                like.shape, seed=kwargs["seed"], stream=kwargs.get("stream", 0),
                sample_offset=kwargs.get("sample_offset", 0), dtype=torch.float32).to(dtype)
            new_kwargs["seed"] = None
        return new_args, new_kwargs

    return convert
