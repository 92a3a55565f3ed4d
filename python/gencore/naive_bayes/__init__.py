"""Gaussian naive Bayes: scikit-learn's estimator semantics in PyTorch (float64), plus sampling.

:class:`GaussianNB` follows :class:`sklearn.naive_bayes.GaussianNB` (same parameters, same
attributes, same online update of Chan, Golub and LeVeque, same ``var_smoothing`` rule), so its
probabilities agree with scikit-learn's to rounding. As a generative model it also draws
``X`` given ``y`` (:meth:`GaussianNB.sample`), and :meth:`GaussianNB.to_linear` gives the
equivalent multinomial logistic (linear) classifier, the discriminative twin of naive Bayes.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from gencore._validate import check_seed
from gencore.rng import rand, randn

__all__ = ["GaussianNB"]

_F = torch.float64


def _as_x(X: Any, name: str = "X") -> torch.Tensor:
    if isinstance(X, torch.Tensor):
        if X.is_complex() or X.dtype == torch.bool:
            raise TypeError(f"{name} must be real numbers, got {X.dtype}")
        x = X.detach().to(_F)
    else:
        try:
            x = torch.as_tensor(np.asarray(X, dtype=np.float64))
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be array-like of real numbers: {exc}") from None
    if x.dim() != 2:
        raise ValueError(f"{name} must have shape (n_samples, n_features), got {tuple(x.shape)}")
    if x.numel() and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} must be finite, got NaN or infinity")
    return x


def _as_y(y: Any, n: int | None, name: str = "y") -> torch.Tensor:
    t = y.detach() if isinstance(y, torch.Tensor) else torch.as_tensor(np.asarray(y))
    if t.dim() == 2 and t.shape[1] == 1:
        t = t[:, 0]
    if t.dim() != 1:
        raise ValueError(f"{name} must have shape (n_samples,), got {tuple(t.shape)}")
    if n is not None and t.shape[0] != n:
        raise ValueError(f"{name} has {t.shape[0]} samples but X has {n}")
    if t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"{name} must hold numeric class labels, got {t.dtype}")
    if t.is_floating_point() and t.numel() and not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be finite, got NaN or infinity")
    return t


class GaussianNB:
    """Gaussian naive Bayes, the classifier and the generative model.

    ``p(x, y=k) = pi_k prod_j N(x_j; theta_kj, var_kj)``. Parameters and attributes mirror
    :class:`sklearn.naive_bayes.GaussianNB`; arrays are float64 torch tensors.

    Args:
        priors: class prior probabilities ``(n_classes,)``; estimated from counts when None.
        var_smoothing: fraction of the largest feature variance (of the batch being fitted)
            added to every variance: ``epsilon_ = var_smoothing * max_j var(X[:, j])``.

    Attributes:
        classes_: sorted class labels ``(n_classes,)``.
        theta_: class means ``(n_classes, n_features)``.
        var_: class variances ``(n_classes, n_features)`` including ``epsilon_``.
        class_count_: (weighted) number of samples per class ``(n_classes,)``.
        class_prior_: class probabilities ``(n_classes,)``.
        epsilon_: the variance added to ``var_``.
        n_features_in_: number of features.

    Example:
        >>> import torch
        >>> from gencore.naive_bayes import GaussianNB
        >>> X = torch.tensor([[-1., -1], [-2, -1], [-3, -2], [1, 1], [2, 1], [3, 2]])
        >>> y = torch.tensor([1, 1, 1, 2, 2, 2])
        >>> GaussianNB().fit(X, y).predict(torch.tensor([[-0.8, -1.0]])).tolist()
        [1]
    """

    def __init__(self, *, priors: Any = None, var_smoothing: float = 1e-9) -> None:
        self.priors = priors
        self.var_smoothing = var_smoothing

    # ------------------------------------------------------------------ fitting
    def _check_params(self) -> None:
        vs = self.var_smoothing
        if isinstance(vs, bool) or not isinstance(vs, (int, float)) or not math.isfinite(vs) or vs < 0:
            raise ValueError(f"var_smoothing must be a finite number >= 0, got {vs!r}")

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> GaussianNB:
        """Fits means and variances per class (forgetting any previous fit).

        Args:
            X: ``(n_samples, n_features)``.
            y: ``(n_samples,)`` class labels.
            sample_weight: optional non-negative weights ``(n_samples,)``.

        Returns:
            self.
        """
        yy = _as_y(y, None)
        self.classes_ = None
        return self._partial_fit(X, yy, torch.unique(yy), sample_weight)

    def partial_fit(self, X: Any, y: Any, classes: Any = None, sample_weight: Any = None) -> GaussianNB:
        """Updates the fit with one more batch; ``classes`` is required on the first call.

        Args:
            X: ``(n_samples, n_features)``.
            y: ``(n_samples,)`` labels, each in ``classes``.
            classes: every label that can occur ``(n_classes,)``; first call only.
            sample_weight: optional non-negative weights ``(n_samples,)``.

        Returns:
            self.
        """
        return self._partial_fit(X, y, classes, sample_weight)

    def _partial_fit(self, X: Any, y: Any, classes: Any, sample_weight: Any) -> GaussianNB:
        self._check_params()
        first = getattr(self, "classes_", None) is None
        if first:
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit")
            cls = _as_y(classes, None, "classes")
            if torch.unique(cls).numel() != cls.numel():
                raise ValueError("classes must not contain duplicates")
            cls = torch.sort(cls).values
        elif classes is not None:
            cls = torch.sort(_as_y(classes, None, "classes")).values
            if not torch.equal(cls.to(self.classes_.dtype), self.classes_):
                raise ValueError(
                    f"classes={cls.tolist()} is not the same as on the first call {self.classes_.tolist()}"
                )
        x = _as_x(X)
        yy = _as_y(y, x.shape[0])
        if x.shape[0] == 0:
            raise ValueError("X must contain at least one sample")
        sw = None
        if sample_weight is not None:
            sw = (sample_weight.detach() if isinstance(sample_weight, torch.Tensor)
                  else torch.as_tensor(np.asarray(sample_weight, dtype=np.float64))).to(_F).reshape(-1)
            if sw.numel() != x.shape[0]:
                raise ValueError(f"sample_weight must have {x.shape[0]} entries, got {sw.numel()}")
            if not bool(torch.isfinite(sw).all()) or bool((sw < 0).any()):
                raise ValueError("sample_weight must be finite and non-negative")

        epsilon = self.var_smoothing * float(x.var(dim=0, unbiased=False).max())
        if first:
            n_classes, n_features = cls.numel(), x.shape[1]
            if self.priors is not None:
                pri = torch.as_tensor(np.asarray(self.priors, dtype=np.float64)).reshape(-1)
                if pri.numel() != n_classes:
                    raise ValueError(f"priors must have one entry per class ({n_classes}), got {pri.numel()}")
                if not math.isclose(float(pri.sum()), 1.0, rel_tol=1e-5, abs_tol=1e-8):
                    raise ValueError(f"priors must sum to 1, got {float(pri.sum())}")
                if bool((pri < 0).any()):
                    raise ValueError("priors must be non-negative")
            else:
                pri = torch.zeros(n_classes, dtype=_F)
            self.classes_ = cls
            try:
                idx_all = self._class_index(yy, "y")
            except ValueError:
                self.classes_ = None
                raise
            self.theta_ = torch.zeros(n_classes, n_features, dtype=_F)
            self.var_ = torch.zeros(n_classes, n_features, dtype=_F)
            self.class_count_ = torch.zeros(n_classes, dtype=_F)
            self.n_features_in_ = n_features
            self.class_prior_ = pri
        else:
            if x.shape[1] != self.theta_.shape[1]:
                raise ValueError(f"X has {x.shape[1]} features, the model was fitted with {self.theta_.shape[1]}")
            idx_all = self._class_index(yy, "y")
            # scikit-learn removes the epsilon of *this* batch before the update
            self.var_ = self.var_ - epsilon
        self.epsilon_ = epsilon

        for i in torch.unique(idx_all).tolist():
            mask = idx_all == i
            xi = x[mask]
            wi = None if sw is None else sw[mask]
            n_i = float(xi.shape[0]) if wi is None else float(wi.sum())
            mu, var = self._update_mean_variance(float(self.class_count_[i]), self.theta_[i], self.var_[i], xi, wi)
            self.theta_[i] = mu
            self.var_[i] = var
            self.class_count_[i] += n_i
        self.var_ = self.var_ + epsilon
        if self.priors is None:
            self.class_prior_ = self.class_count_ / self.class_count_.sum()
        return self

    @staticmethod
    def _update_mean_variance(n_past: float, mu: torch.Tensor, var: torch.Tensor, X: torch.Tensor,
                              sample_weight: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Chan, Golub and LeVeque's pairwise update of per-feature mean and variance."""
        if X.shape[0] == 0:
            return mu, var
        if sample_weight is not None:
            n_new = float(sample_weight.sum())
            if math.isclose(n_new, 0.0, abs_tol=1e-8):
                return mu, var
            new_mu = (X * sample_weight[:, None]).sum(0) / n_new
            new_var = (((X - new_mu) ** 2) * sample_weight[:, None]).sum(0) / n_new
        else:
            n_new = float(X.shape[0])
            new_var = X.var(dim=0, unbiased=False)
            new_mu = X.mean(dim=0)
        if n_past == 0:
            return new_mu, new_var
        n_total = n_past + n_new
        total_mu = (n_new * new_mu + n_past * mu) / n_total
        total_ssd = n_past * var + n_new * new_var + (n_new * n_past / n_total) * (mu - new_mu) ** 2
        return total_mu, total_ssd / n_total

    def _class_index(self, labels: torch.Tensor, name: str) -> torch.Tensor:
        """Positions of ``labels`` in ``classes_``; ValueError naming ``name`` for unknown labels."""
        cd = self.classes_.to(_F)
        ld = labels.to(_F)
        idx = torch.searchsorted(cd, ld).clamp_max(cd.numel() - 1)
        bad = cd[idx] != ld
        if bool(bad.any()):
            raise ValueError(
                f"{name} holds labels {sorted(set(labels[bad].tolist()))} that are not in classes "
                f"{self.classes_.tolist()}"
            )
        return idx

    # --------------------------------------------------------------- prediction
    def _check_fitted(self) -> None:
        if getattr(self, "classes_", None) is None:
            raise RuntimeError("this GaussianNB is not fitted yet: call fit or partial_fit first")

    def predict_joint_log_proba(self, X: Any) -> torch.Tensor:
        """``log p(x, y=k)`` for every class: ``(n_samples, n_classes)``."""
        self._check_fitted()
        x = _as_x(X)
        if x.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {x.shape[1]} features, the model was fitted with {self.n_features_in_}")
        log_norm = -0.5 * torch.log(2.0 * math.pi * self.var_).sum(1)  # (k,)
        quad = (((x[:, None, :] - self.theta_[None]) ** 2) / self.var_[None]).sum(-1)  # (n, k)
        return torch.log(self.class_prior_)[None] + log_norm[None] - 0.5 * quad

    def predict_log_proba(self, X: Any) -> torch.Tensor:
        """``log p(y=k | x)``: ``(n_samples, n_classes)``."""
        jll = self.predict_joint_log_proba(X)
        return jll - torch.logsumexp(jll, dim=1, keepdim=True)

    def predict_proba(self, X: Any) -> torch.Tensor:
        """``p(y=k | x)``: ``(n_samples, n_classes)``."""
        return torch.exp(self.predict_log_proba(X))

    def predict(self, X: Any) -> torch.Tensor:
        """The most probable class label of each row: ``(n_samples,)``."""
        jll = self.predict_joint_log_proba(X)
        return self.classes_[jll.argmax(1)]

    def score(self, X: Any, y: Any) -> float:
        """Mean accuracy on ``(X, y)``."""
        pred = self.predict(X)
        yy = _as_y(y, pred.shape[0]).to(pred.dtype)
        return float((pred == yy).double().mean())

    # --------------------------------------------------------------- generation
    def sample(self, n: int, y: Any = None, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Draws ``x ~ p(x | y)`` (and ``y ~ class_prior_`` when ``y`` is None).

        Noise follows gencore's noise contract: the normals of sample ``i`` come from
        ``gencore.randn(seed=seed, stream=0)`` row ``i``; drawn labels use stream 1.

        Args:
            n: number of samples.
            y: None, one class label (for all samples) or ``(n,)`` labels from ``classes_``.
            seed: noise seed.

        Returns:
            ``(X, y)``: float64 ``(n, n_features)`` and the labels ``(n,)``.

        Example:
            >>> import torch
            >>> from gencore.naive_bayes import GaussianNB
            >>> nb = GaussianNB().fit(torch.randn(100, 3), torch.arange(100) % 2)
            >>> X, y = nb.sample(5, y=1, seed=0)
            >>> tuple(X.shape), y.tolist()
            ((5, 3), [1, 1, 1, 1, 1])
        """
        self._check_fitted()
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        seed = check_seed(seed)
        if y is None:
            u = rand(n, seed=seed, stream=1, dtype=_F)
            cdf = torch.cumsum(self.class_prior_, 0)
            idx = torch.searchsorted(cdf / cdf[-1], u).clamp_max(len(self.classes_) - 1)
        else:
            labels = _as_y(y.reshape(-1) if isinstance(y, torch.Tensor) else np.atleast_1d(np.asarray(y)), None)
            if labels.numel() == 1:
                labels = labels.expand(n)
            if labels.numel() != n:
                raise ValueError(f"y must be one label or {n} labels, got {labels.numel()}")
            idx = self._class_index(labels, "y")
        eps = randn(n, self.n_features_in_, seed=seed, stream=0, dtype=_F)
        X = self.theta_[idx] + self.var_[idx].sqrt() * eps
        return X, self.classes_[idx]

    def to_linear(self, *, pooled: bool = False, rtol: float = 1e-9) -> tuple[torch.Tensor, torch.Tensor]:
        """Weights and bias of the equivalent linear (multinomial logistic) classifier.

        With a variance per feature shared by all classes (``var_[k, j] = s_j``),
        ``log p(x, y=k) = c(x) + x . (theta_k / s) + log pi_k - 0.5 sum_j theta_kj^2 / s_j``,
        where ``c(x)`` is the same for every class. So ``logits = x @ W.T + b`` with
        ``W[k] = theta_k / s`` and ``b[k] = log pi_k - 0.5 sum_j theta_kj^2 / s_j`` differ from
        :meth:`predict_joint_log_proba` by a per-row constant: softmax(logits) equals
        :meth:`predict_proba` and the logit differences equal the joint-log-probability
        differences. This is exact exactly when the variances are shared; with class-dependent
        variances the log-odds are quadratic in ``x`` and no linear classifier reproduces them.

        Args:
            pooled: when False (default), raise ``ValueError`` unless every class has the same
                variances (to ``rtol``). When True, use the pooled variance
                ``s_j = sum_k class_count_k var_kj / sum_k class_count_k``: the result is then
                exact for the shared-variance naive Bayes with those variances (Gaussian naive
                Bayes as a diagonal LDA), not for this model unless its variances are shared.
            rtol: relative tolerance of the shared-variance check.

        Returns:
            ``(W, b)``: float64 ``(n_classes, n_features)`` and ``(n_classes,)``.

        Example:
            >>> import torch
            >>> from gencore.naive_bayes import GaussianNB
            >>> x0 = torch.randn(50, 2, dtype=torch.float64)
            >>> nb = GaussianNB(var_smoothing=0).fit(torch.cat([x0, x0 + 3]), torch.arange(100) // 50)
            >>> W, b = nb.to_linear()
            >>> tuple(W.shape), tuple(b.shape)
            ((2, 2), (2,))
        """
        self._check_fitted()
        if pooled:
            w = self.class_count_ / self.class_count_.sum()
            s = (w[:, None] * self.var_).sum(0)
        else:
            s = self.var_[0]
            spread = (self.var_ - s[None]).abs().max()
            if float(spread) > rtol * float(s.abs().max()):
                raise ValueError(
                    "to_linear is exact only when every class has the same per-feature variances; "
                    f"var_ differs across classes by up to {float(spread):.3g}; pass pooled=True for the "
                    "shared-variance (pooled) linear classifier"
                )
        W = self.theta_ / s[None]
        b = torch.log(self.class_prior_) - 0.5 * (self.theta_ ** 2 / s[None]).sum(1)
        return W, b

    def __repr__(self) -> str:
        return f"GaussianNB(priors={self.priors!r}, var_smoothing={self.var_smoothing!r})"
