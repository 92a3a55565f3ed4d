"""Gaussian naive Bayes family of the zoo (fitted in closed form, measured against scikit-learn)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

import torch

from gencore.naive_bayes import GaussianNB
from gencore.zoo.base import ZooModel, sample_metrics
from gencore.zoo.data import Dataset, flat

__all__ = ["NaiveBayesFamily"]


class NaiveBayesFamily(ZooModel):
    """Gaussian naive Bayes (fitted, not trained by gradient)."""

    name = "naive_bayes"
    scale = "unit"
    conditional_family = True
    defaults: ClassVar[dict[str, Any]] = {
        "steps": 1, "batch_size": 1, "lr": 0.0, "var_smoothing": 1e-9,
    }
    _state_keys = ("theta_", "var_", "class_prior_", "class_count_", "classes_")

    def __init__(self, config: dict) -> None:
        super().__init__(config)
        self.nb = GaussianNB(var_smoothing=float(config["var_smoothing"]))

    def fit(self, ds: Dataset, *, progress: bool = False, checkpoint: Path | None = None,
            checkpoint_every: int = 0, resume: bool = False) -> tuple[float, list[dict]]:
        """Fits the class statistics on the training split in one pass.

        The training-loop options do not apply and are ignored.

        Returns:
            ``(seconds, [])``.
        """
        t0 = time.perf_counter()
        self.nb.fit(flat(ds.x_train).double(), ds.y_train)
        return time.perf_counter() - t0, []

    def state_dict(self, *args, **kwargs) -> dict[str, torch.Tensor]:
        """The fitted statistics (empty before fitting)."""
        out = {k: getattr(self.nb, k) for k in self._state_keys if getattr(self.nb, "classes_", None) is not None}
        if out:
            out["epsilon_"] = torch.tensor(float(self.nb.epsilon_), dtype=torch.float64)
        return out

    def load_state_dict(self, state: dict[str, torch.Tensor], strict: bool = True) -> None:
        """Sets the fitted statistics from :meth:`state_dict`'s output."""
        for k in self._state_keys:
            setattr(self.nb, k, state[k].clone())
        self.nb.epsilon_ = float(state["epsilon_"])
        self.nb.n_features_in_ = int(state["theta_"].shape[1])

    def generate(self, n: int, y, *, seed: int, **kw: Any) -> torch.Tensor:
        x, _ = self.nb.sample(n, y=y, seed=seed)
        return x.float().clamp(0, 1)

    def evaluate(self, ds: Dataset, *, seed: int = 0) -> dict[str, Any]:
        """Test accuracy, scikit-learn's on the same data, their largest probability gap, sample metrics."""
        from sklearn.naive_bayes import GaussianNB as SkNB  # the oracle: a slow import, needed here only

        xt, yt = flat(ds.x_test).double(), ds.y_test
        sk = SkNB(var_smoothing=float(self.config["var_smoothing"])).fit(flat(ds.x_train).double().numpy(),
                                                                          ds.y_train.numpy())
        out = {"test_accuracy": self.nb.score(xt, yt),
               "sklearn_test_accuracy": float(sk.score(xt.numpy(), yt.numpy())),
               "max_abs_proba_diff_vs_sklearn": float(
                   (self.nb.predict_proba(xt) - torch.from_numpy(sk.predict_proba(xt.numpy()))).abs().max())}
        out.update(sample_metrics(self, ds, seed=seed))
        return out
