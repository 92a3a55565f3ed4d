"""VAE reparameterization benchmark: ``gencore.vae.reparameterize_kl`` forward + backward
against ``torch.distributions`` (``Normal(mu, std).rsample()`` + ``kl_divergence``, what a user
writes today), the hand-written eager formula, ``torch.compile`` of that formula, the gencore
reference path, and the bandwidth floor, in one run; with the peak extra memory of each.

Every variant computes ``z`` (batch, features) and the per-sample KL (batch,), then the
gradients wrt ``mu`` and ``logvar`` for fixed upstream gradients (``torch.autograd.backward``
with precomputed ``grad_z``, ``grad_kl``), so only the op itself is timed.

Peak extra memory is measured, not derived: each variant runs once in a forked child process
(one thread) that first returns free heap pages to the OS (``malloc_trim``) and then reports the
growth of its peak resident set size (``ru_maxrss``) over its resident size before the call;
inputs and upstream gradients exist before the fork.
"""

from __future__ import annotations

import logging
import os

import torch

import gencore
import gencore.rng
import gencore.vae as V
from gencore import _native
from gencore.bench.common import (
    Section,
    copy_bandwidth,
    reference_mode,
    release_free_memory,
    time_fn,
    try_compile,
)

__all__ = ["compute_floor", "fused_section", "peak_extra_bytes", "run"]

log = logging.getLogger(__name__)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss_bytes() -> int:
    """The resident-set high-water mark (VmHWM) of this process."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise OSError("no VmHWM in /proc/self/status")


def _reset_peak_rss() -> None:
    """Resets the high-water mark to the current resident set (Linux >= 4.0). A forked child
    starts with its parent's mark, which would otherwise count memory the parent once used."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_extra_bytes(fn) -> float:
    """Peak resident memory added by one call of ``fn`` (bytes), measured in a forked child;
    NaN where fork or /proc is unavailable."""
    if not hasattr(os, "fork") or not os.path.exists("/proc/self/statm"):
        return float("nan")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: one thread (no OpenMP pool after fork), one call
        value = "nan"
        try:
            os.close(r)
            torch.set_num_threads(1)
            release_free_memory()
            _reset_peak_rss()
            before = _rss_bytes()
            fn()
            value = str(_peak_rss_bytes() - before)
        except BaseException:
            value = "nan"
        finally:
            os.write(w, value.encode())
            os._exit(0)
    os.close(w)
    data = b""
    while True:
        chunk = os.read(r, 64)
        if not chunk:
            break
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    try:
        return float(data.decode() or "nan")
    except ValueError:
        return float("nan")


def _eager(mu, lv):
    std = torch.exp(0.5 * lv)
    z = mu + std * torch.randn_like(mu)
    kl = 0.5 * (mu * mu + torch.exp(lv) - 1.0 - lv).sum(dim=1)
    return z, kl


def _distributions(mu, lv):
    from torch.distributions import Normal, kl_divergence

    q = Normal(mu, torch.exp(0.5 * lv))
    z = q.rsample()
    kl = kl_divergence(q, Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum(dim=1)
    return z, kl


def compute_floor(mu: torch.Tensor, logvar: torch.Tensor, grad_z: torch.Tensor, grad_kl: torch.Tensor,
                  threads: int, rows: int = 128, repeat: int = 50) -> tuple[float, float] | None:
    """(forward + backward, forward) seconds the fused op would take on the whole (n, D) batch if
    only its arithmetic counted: the native kernels (eps drawn in the forward and again in the
    backward) on the first ``rows`` samples, a block that stays in cache, timed on one thread
    into preallocated outputs and scaled to n samples on ``threads`` threads with perfect
    scaling. None without the native CPU kernels."""
    if not _native.use_native() or mu.device.type != "cpu" or mu.dtype != torch.float32:
        return None
    n, D = mu.shape
    rows = min(rows, n)
    m, lv, gz = (a[:rows].contiguous() for a in (mu.detach(), logvar.detach(), grad_z))
    gk = grad_kl[:rows].contiguous()
    z, dmu, dlv = torch.empty_like(m), torch.empty_like(m), torch.empty_like(m)
    kl = torch.empty(rows)
    one_thread = (_native.dtype_code(m.dtype), -1, 0, 1)

    def forward():
        _native.call("vae_forward", m, lv, None, z, kl, rows, D, 1, 0, 0, one_thread)

    def backward():
        _native.call("vae_backward", m, lv, None, gz, gk, dmu, dlv, rows, D, 1, 0, 0, one_thread)

    scale = n / rows / max(1, threads)
    t_f = time_fn(forward, warmup=5, repeat=repeat)
    t_b = time_fn(backward, warmup=5, repeat=repeat)
    return (t_f + t_b) * scale, t_f * scale


def fused_section(quick: bool = False, device: str = "cpu") -> Section:
    batch, feat = (1024, 512) if quick else (4096, 512)
    repeat = 5 if quick else 15
    g = torch.Generator().manual_seed(0)
    mu0 = torch.randn(batch, feat, generator=g).to(device)
    lv0 = (0.5 * torch.randn(batch, feat, generator=g)).to(device)
    eps = torch.randn(batch, feat, generator=g).to(device)
    gz = torch.randn(batch, feat, generator=g).to(device)
    gk = torch.randn(batch, generator=g).to(device)
    mu = mu0.clone().requires_grad_()
    lv = lv0.clone().requires_grad_()

    def fwd_bwd(f):
        def call():
            mu.grad = None
            lv.grad = None
            z, kl = f(mu, lv)
            torch.autograd.backward((z, kl), (gz, gk))
        return call

    def fwd(f):
        def call():
            with torch.no_grad():
                f(mu, lv)
        return call

    def gencore_seed(m, v):
        return V.reparameterize_kl(m, v, seed=1)

    def gencore_noise(m, v):
        return V.reparameterize_kl(m, v, noise=eps)

    def gencore_reference(m, v):
        with reference_mode():
            return V.reparameterize_kl(m, v, seed=1)

    variants = [
        ("gencore reparameterize_kl (seed: eps in-kernel, recomputed in backward)", gencore_seed),
        ("gencore reparameterize_kl (noise=eps given)", gencore_noise),
        ("torch.distributions rsample + kl_divergence", _distributions),
        ("eager formula", _eager),
        ("torch.compile(eager formula)", None),
        ("gencore reference path (pure PyTorch)", gencore_reference),
    ]
    compiled = try_compile(_eager) if not quick else None
    sec = Section(
        title=f"reparameterize_kl forward+backward, ({batch}, {feat}) float32, {torch.get_num_threads()} threads, "
              f"{device}",
        columns=["method", "fwd+bwd ms", "fwd ms", "fwd+bwd x slower than gencore", "peak extra MB (1 thread)"],
    )
    results = {}
    for name, f in variants:
        if f is None:
            if compiled is None:
                continue
            f = compiled
        try:
            t_fb = time_fn(fwd_bwd(f), warmup=3, repeat=repeat, device=device)
            t_f = time_fn(fwd(f), warmup=2, repeat=repeat, device=device)
        except Exception as exc:
            log.warning("%s failed: %s", name, exc)
            continue
        mem = peak_extra_bytes(fwd_bwd(f)) if device == "cpu" else float("nan")
        results[name] = t_fb
        sec.rows.append([name, t_fb * 1e3, t_f * 1e3, 0.0, mem / 2**20])
    base = results[variants[0][0]]
    for row in sec.rows:
        row[3] = results[row[0]] / base
    elem = batch * feat * 4
    # Forward reads mu, logvar, writes z (+ kl); backward reads mu, logvar, grad_z, writes 2 grads.
    floor = (3 * elem + 5 * elem + batch * 8) / copy_bandwidth(device)
    sec.add("bandwidth floor (8 arrays of (batch, features) moved)", floor * 1e3, 3 * elem / copy_bandwidth(device)
            * 1e3, floor / base, float("nan"))
    ceiling = ""
    cf = compute_floor(mu0, lv0, gz, gk, torch.get_num_threads()) if device == "cpu" else None
    if cf is not None:
        sec.add(f"compute floor (the fused op on an in-cache (128, {feat}) block, 1 thread, scaled to this batch "
                "and thread count)", cf[0] * 1e3, cf[1] * 1e3, cf[0] / base, float("nan"))
        ceiling = (f" Its arithmetic alone (the compute floor row) takes {cf[0] * 1e3:.2f} ms, so no overlap of "
                   f"memory traffic could make it more than {results.get(variants[2][0], float('nan')) / cf[0]:.1f}x "
                   "faster than torch.distributions here.")
    # The fused op draws eps twice (forward, and again in the backward instead of storing it):
    # the time of those draws alone, into a preallocated buffer, is the larger part of its arithmetic.
    buf = torch.empty(batch, feat, device=device)
    t_noise = 2 * time_fn(lambda: gencore.rng.fill_(buf, seed=1), warmup=3, repeat=repeat, device=device)
    sec.add("noise alone: eps drawn twice (2 x gencore.rng.fill_ of (batch, features))", t_noise * 1e3,
            t_noise / 2 * 1e3, t_noise / base, float("nan"))
    outputs_mb = (3 * elem + batch * 4) / 2**20  # z, grad_mu, grad_logvar and kl
    d = results.get(variants[2][0], float("nan"))
    e = results.get(variants[3][0], float("nan"))
    given = results.get(variants[1][0], float("nan"))
    sec.notes.append(
        f"Targets: >= 8x faster than torch.distributions (measured {d / base:.1f}x) and >= 4x faster than the "
        f"eager formula (measured {e / base:.1f}x). The fused op takes {base * 1e3:.2f} ms; its two parts timed "
        f"alone: drawing eps twice {t_noise * 1e3:.2f} ms, and the rest of the op {given * 1e3:.2f} ms (the row "
        f"with eps given: exp, products, KL, loads and stores; compute-bound, the bandwidth floor is "
        f"{floor * 1e3:.2f} ms)." + ceiling)
    sec.notes.append(
        f"Outputs of the fused op by design: z, kl, grad_mu, grad_logvar = {outputs_mb:.1f} MB; the peak extra "
        "memory column is the growth of the peak RSS (VmHWM, reset before the call) of a forked one-thread child "
        "over one call (page granular; it includes whatever the allocator keeps).")
    return sec


def run(quick: bool = False, device: str = "cpu") -> list[Section]:
    return [fused_section(quick, device)]
