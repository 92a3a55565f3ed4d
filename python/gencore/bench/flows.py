"""Flows benchmark: the fused affine coupling (forward + backward) against the eager
reference, ``torch.compile`` of the reference and the bandwidth floor; a whole RealNVP
training step against zuko's RealNVP and gencore's reference path, in one run.
"""

from __future__ import annotations

import logging
import statistics
import time

import torch

import gencore.flows as gf
from gencore.bench.common import Section, copy_bandwidth, reference_mode, sync, try_compile
from gencore.flows import reference

__all__ = ["coupling_section", "run", "training_section"]

log = logging.getLogger(__name__)


def _stats(fn, *, warmup: int = 3, repeat: int = 20, device: str = "cpu") -> tuple[float, float]:
    """(median, best) wall time in seconds. On a shared machine the best run is the one least
    disturbed by other processes; both are reported."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def _coupling_fns(n: int, d: int, clamp, device: str, dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    x, t, v = (torch.randn(n, d, generator=g).to(device=device, dtype=dtype).requires_grad_() for _ in range(3))
    gy = torch.randn(n, d, generator=g).to(device=device, dtype=dtype)
    gl = torch.randn(n, generator=g).to(device=device, dtype=dtype)
    ins = [x, t, v]

    def step(fn):
        def f():
            y, ld = fn(x, t, v, clamp=clamp)
            return torch.autograd.grad((y, ld), ins, (gy, gl))
        return f

    def fwd(fn):
        def f():
            with torch.no_grad():
                return fn(x, t, v, clamp=clamp)
        return f

    def ref_plain(a, b, c, clamp=None):
        return reference._forward(a, b, c, clamp, 2.0, False)

    return step, fwd, gf.affine_coupling, ref_plain


def coupling_section(quick: bool = False, device: str = "cpu") -> Section:
    """Coupling op at (4096, 256) fp32, forward+backward and forward only."""
    n, d = (1024, 256) if quick else (4096, 256)
    repeat = 5 if quick else 20
    bw = copy_bandwidth(device)
    sec = Section(f"Flows: affine coupling forward+backward ({n}, {d}) fp32 on {device}, "
                  f"{torch.get_num_threads()} threads (median / best of {repeat})",
                  ["clamp", "pass", "native ms", "eager ref ms", "compiled ref ms", "floor ms",
                   "ref/native", "compiled/native", "native/floor", "best: ref/native",
                   "best: compiled/native", "best: native/floor"])
    elem = n * d * 4
    for clamp in (None, "atan"):
        step, fwd, native, ref = _coupling_fns(n, d, clamp, device)
        compiled = try_compile(ref, dynamic=False)
        for label, maker, nbytes in (("fwd+bwd", step, 9 * elem + 2 * n * 4), ("fwd", fwd, 4 * elem + n * 4)):
            t_nat, b_nat = _stats(maker(native), repeat=repeat, device=device)
            t_ref, b_ref = _stats(maker(ref), repeat=repeat, device=device)
            t_cmp = b_cmp = float("nan")
            if compiled is not None:
                try:
                    t_cmp, b_cmp = _stats(maker(compiled), warmup=2, repeat=repeat, device=device)
                except Exception as exc:  # pragma: no cover - toolchain dependent
                    log.warning("torch.compile of the reference failed: %s", exc)
            floor = nbytes / bw
            sec.add(str(clamp), label, t_nat * 1e3, t_ref * 1e3, t_cmp * 1e3, floor * 1e3,
                    t_ref / t_nat, t_cmp / t_nat, t_nat / floor, b_ref / b_nat, b_cmp / b_nat, b_nat / floor)
    sec.notes.append(
        f"Floor: bytes moved / measured copy bandwidth ({bw / 1e9:.1f} GB/s). fwd+bwd moves 9 (n, d) "
        "tensors: forward reads x, shift, log_scale and writes y; backward reads grad_y, x, log_scale "
        "and writes grad_x, grad_log_scale (grad_shift is grad_y itself). fwd alone moves 4. "
        "Targets: ref/native >= 3, native/floor <= 1.5.")
    return sec


def _realnvp_step(flow, x, opt):
    def f():
        loss = -flow.log_prob(x).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return f


def training_section(quick: bool = False, device: str = "cpu") -> Section:
    """One Adam step of RealNVP (checkered masks, MLP conditioners), gencore vs zuko."""
    try:
        import zuko
    except ImportError:  # pragma: no cover
        zuko = None
    configs = [(2, 8, (128, 128), 512), (64, 4, (256, 256), 1024)]
    if quick:
        configs = [(2, 4, (64, 64), 256), (16, 3, (64, 64), 256)]
    repeat = 5 if quick else 20
    sec = Section(f"Flows: RealNVP training step (Adam) on {device}, {torch.get_num_threads()} threads "
                  f"(median / best of {repeat})",
                  ["features/transforms/hidden/batch", "gencore native ms", "gencore reference ms", "zuko ms",
                   "reference/native", "zuko/native", "best: reference/native", "best: zuko/native"])
    for features, transforms, hidden, batch in configs:
        torch.manual_seed(0)
        x = torch.randn(batch, features, device=device)
        ours = gf.RealNVP(features, transforms=transforms, hidden=hidden, clamp="atan").to(device)
        opt = torch.optim.Adam(ours.parameters(), lr=1e-4)
        t_nat, b_nat = _stats(_realnvp_step(ours, x, opt), repeat=repeat, device=device)
        with reference_mode():
            t_ref, b_ref = _stats(_realnvp_step(ours, x, opt), repeat=repeat, device=device)
        t_z = b_z = float("nan")
        if zuko is not None:
            zf = zuko.flows.RealNVP(features, transforms=transforms, hidden_features=hidden).to(device)
            zopt = torch.optim.Adam(zf.parameters(), lr=1e-4)

            def zstep(zf=zf, zopt=zopt, x=x):
                loss = -zf().log_prob(x).mean()
                zopt.zero_grad(set_to_none=True)
                loss.backward()
                zopt.step()

            t_z, b_z = _stats(zstep, repeat=repeat, device=device)
        sec.add(f"{features}/{transforms}/{'x'.join(map(str, hidden))}/{batch}", t_nat * 1e3, t_ref * 1e3,
                t_z * 1e3, t_ref / t_nat, t_z / t_nat, b_ref / b_nat, b_z / b_nat)
    sec.notes.append("Same architecture: checkered masks, ReLU MLP conditioners, affine couplings "
                     "(gencore: atan soft clamp on the fused op; zuko: its MonotonicAffineTransform).")
    return sec


def run(quick: bool = False, device: str = "cpu") -> list[Section]:
    """All flows benchmark sections."""
    return [coupling_section(quick, device), training_section(quick, device)]
