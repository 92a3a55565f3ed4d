"""Training entry points for the flows on embedded data: 2-D toys and scikit-learn's digits.

Both return the trained model and a metrics dict, so that the command line, the benchmarks
and the tests call the same code.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import torch

from gencore.data.digits import batches, load_digits
from gencore.data.toys import make_toy, toy_entropy
from gencore.flows.models import GlowFlow, RealNVP

__all__ = ["TOY_DEFAULTS", "FitResult", "fit_digits", "fit_toy"]

log = logging.getLogger(__name__)

# Architecture and schedule used for the reported toy results (see fit_toy).
TOY_DEFAULTS = dict(transforms=12, hidden=(128, 128), clamp="atan", clamp_value=3.0, lu=True,
                    steps=4000, batch_size=512, lr=2e-3)


@dataclass
class FitResult:
    """A trained flow and its measurements."""

    model: torch.nn.Module
    metrics: dict


class _threads:
    def __init__(self, n: int | None):
        self.n = n

    def __enter__(self):
        self.old = torch.get_num_threads()
        if self.n is not None:
            torch.set_num_threads(int(self.n))

    def __exit__(self, *exc):
        torch.set_num_threads(self.old)
        return False


def _cosine(step: int, total: int, lr: float, warmup: int = 100) -> float:
    if step < warmup:
        return lr * (step + 1) / warmup
    return 0.5 * lr * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


@torch.no_grad()
def _mean_nll(flow, x: torch.Tensor, batch: int = 8192) -> tuple[float, float]:
    """Mean and standard error of ``-log p(x)`` over x."""
    flow.eval()
    lp = torch.cat([flow.log_prob(c) for c in x.split(batch)]).double()
    flow.train()
    return float(-lp.mean()), float(lp.std() / math.sqrt(len(lp)))


def fit_toy(name: str, *, transforms: int | None = None, hidden=None, clamp: str | None = None,
            clamp_value: float | None = None, lu: bool | None = None, steps: int | None = None,
            batch_size: int | None = None, lr: float | None = None, n_train: int = 100_000,
            n_test: int = 20_000, seed: int = 0, time_limit: float | None = None,
            progress: bool = False, entropy_samples: int = 20_000, threads: int | None = None) -> FitResult:
    """Trains :class:`RealNVP` on a 2-D toy (:func:`gencore.data.make_toy`) by maximum likelihood.

    Training set: ``n_train`` samples with seed ``seed``; held-out test set: ``n_test`` samples
    with seed ``seed + 1_000_003``; Adam with linear warm-up and cosine decay.

    Args:
        name: toy name (``"moons"``, ``"8gaussians"``, ``"checkerboard"``, ...).
        transforms, hidden, clamp, clamp_value, lu: RealNVP architecture (defaults:
            :data:`TOY_DEFAULTS`).
        steps, batch_size, lr: optimisation (defaults: :data:`TOY_DEFAULTS`).
        n_train, n_test: data sizes.
        seed: seeds the data and the initialisation.
        time_limit: stop after this many seconds (the cosine schedule is then cut short).
        progress: show a tqdm bar.
        entropy_samples: samples for the Monte Carlo entropy floor (exact for the checkerboard).
        threads: torch threads while training (restored afterwards); 2-D batches are small, so
            one thread is often fastest on a busy machine.

    Returns:
        :class:`FitResult` with metrics ``test_nll`` (nats), ``test_nll_se``, ``train_nll``,
        ``floor`` (entropy, nats), ``floor_se``, ``gap`` (test_nll - floor), ``seconds``, ``steps``.

    Example:
        >>> r = fit_toy("8gaussians", transforms=2, hidden=(16,), steps=20, n_train=2000,
        ...             n_test=500, entropy_samples=500)
        >>> sorted(k for k in r.metrics if k in ("test_nll", "floor"))
        ['floor', 'test_nll']
    """
    with _threads(threads):
        return _fit_toy(name, transforms, hidden, clamp, clamp_value, lu, steps, batch_size, lr, n_train,
                        n_test, seed, time_limit, progress, entropy_samples)


def _fit_toy(name, transforms, hidden, clamp, clamp_value, lu, steps, batch_size, lr, n_train, n_test, seed,
             time_limit, progress, entropy_samples):
    from tqdm.auto import tqdm


    cfg = dict(TOY_DEFAULTS)
    for k, v in dict(transforms=transforms, hidden=hidden, clamp=clamp, clamp_value=clamp_value, lu=lu,
                     steps=steps, batch_size=batch_size, lr=lr).items():
        if v is not None:
            cfg[k] = v
    torch.manual_seed(seed)
    train = make_toy(name, n_train, seed=seed)
    test = make_toy(name, n_test, seed=seed + 1_000_003)
    flow = RealNVP(2, transforms=cfg["transforms"], hidden=cfg["hidden"], clamp=cfg["clamp"],
                   clamp_value=cfg["clamp_value"], lu=cfg["lu"])
    opt = torch.optim.Adam(flow.parameters(), lr=cfg["lr"])
    g = torch.Generator().manual_seed(seed)
    total = int(cfg["steps"])
    start = time.perf_counter()
    done = 0
    for step in tqdm(range(total), desc=f"flow {name}", disable=not progress):
        for group in opt.param_groups:
            group["lr"] = _cosine(step, total, cfg["lr"])
        idx = torch.randint(0, n_train, (cfg["batch_size"],), generator=g)
        loss = -flow.log_prob(train[idx]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(flow.parameters(), 10.0)
        opt.step()
        done = step + 1
        if step % 500 == 0:
            log.info("%s step %d loss %.4f", name, step, float(loss.detach()))
        if time_limit is not None and time.perf_counter() - start > time_limit:
            break
    seconds = time.perf_counter() - start
    test_nll, test_se = _mean_nll(flow, test)
    train_nll, _ = _mean_nll(flow, train[:n_test])
    floor, floor_se = toy_entropy(name, n=entropy_samples)
    if name == "8gaussians":  # separated components: the closed form is exact to < 1e-6 nats
        floor, floor_se = math.log(8) + 1 + math.log(2 * math.pi * (0.5 / 1.414) ** 2), 0.0
    metrics = dict(name=name, test_nll=test_nll, test_nll_se=test_se, train_nll=train_nll, floor=floor,
                   floor_se=floor_se, gap=test_nll - floor, seconds=seconds, steps=done,
                   config={k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()})
    return FitResult(flow, metrics)


def fit_digits(*, levels: int = 2, steps: int = 4, hidden: int = 64, epochs: int = 60, batch_size: int = 64,
               lr: float = 1e-3, seed: int = 0, time_limit: float | None = None, progress: bool = False,
               conditional: bool = False, threads: int | None = None) -> FitResult:
    """Trains :class:`GlowFlow` on scikit-learn's 8x8 digits and reports bits per dimension.

    Data: :func:`gencore.data.load_digits` (fixed stratified split 1258/269/270), scale
    ``"unit"`` with uniform dequantisation ``(v + u) / 17``, fresh noise every epoch
    (``stream=epoch``); validation and test use fixed noise (seed ``seed + 1``). Bits/dim follow
    :meth:`Flow.bits_per_dim` with 17 levels. The model with the best validation bits/dim is kept.

    Args:
        levels, steps, hidden: GlowFlow architecture.
        epochs, batch_size, lr: Adam with cosine decay over ``epochs``.
        seed: initialisation, batch order and dequantisation noise.
        time_limit: stop after this many seconds.
        progress: show a tqdm bar.
        conditional: condition on the one-hot class (context of 10 features).
        threads: torch threads while training (restored afterwards).

    Returns:
        :class:`FitResult` with metrics ``test_bpd``, ``val_bpd``, ``train_bpd``, ``seconds``,
        ``epochs``.
    """
    with _threads(threads):
        return _fit_digits(levels, steps, hidden, epochs, batch_size, lr, seed, time_limit, progress, conditional)


def _fit_digits(levels, steps, hidden, epochs, batch_size, lr, seed, time_limit, progress, conditional):
    import copy

    from tqdm.auto import tqdm


    torch.manual_seed(seed)
    ctx_dim = 10 if conditional else 0
    flow = GlowFlow((1, 8, 8), levels=levels, steps=steps, hidden=hidden, context=ctx_dim)
    opt = torch.optim.Adam(flow.parameters(), lr=lr)
    xv, yv = load_digits("val", dequantize=True, seed=seed + 1)
    xt, yt = load_digits("test", dequantize=True, seed=seed + 1)

    def onehot(y):
        return torch.nn.functional.one_hot(y, 10).float() if conditional else None

    @torch.no_grad()
    def bpd(x, y):
        flow.eval()
        out = float(flow.bits_per_dim(x, onehot(y)).mean())
        flow.train()
        return out

    start = time.perf_counter()
    best, best_state, done = math.inf, None, 0
    n_batches = None
    for epoch in tqdm(range(epochs), desc="flow digits", disable=not progress):
        xtr, ytr = load_digits("train", dequantize=True, seed=seed, stream=epoch)
        if n_batches is None:
            n_batches = math.ceil(len(xtr) / batch_size)
        for group in opt.param_groups:
            group["lr"] = 0.5 * lr * (1 + math.cos(math.pi * epoch / epochs))
        for xb, yb in batches(xtr, ytr, batch_size=batch_size, seed=seed, epoch=epoch):
            loss = flow.bits_per_dim(xb, onehot(yb)).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(flow.parameters(), 50.0)
            opt.step()
        done = epoch + 1
        v = bpd(xv, yv)
        if v < best:
            best, best_state = v, copy.deepcopy(flow.state_dict())
        log.info("digits epoch %d loss %.4f val bpd %.4f", epoch, float(loss.detach()), v)
        if time_limit is not None and time.perf_counter() - start > time_limit:
            break
    seconds = time.perf_counter() - start
    if best_state is not None:
        flow.load_state_dict(best_state)
    xtr0, ytr0 = load_digits("train", dequantize=True, seed=seed + 1)
    metrics = dict(test_bpd=bpd(xt, yt), val_bpd=bpd(xv, yv), train_bpd=bpd(xtr0, ytr0), seconds=seconds,
                   epochs=done, levels=levels, steps=steps, hidden=hidden, conditional=conditional,
                   parameters=sum(p.numel() for p in flow.parameters()))
    return FitResult(flow, metrics)
