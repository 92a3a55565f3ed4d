"""Every registered family honours the ZooModel interface: fit, sample, save/load round trip."""

from __future__ import annotations

import pytest
import torch

from gencore import zoo
from gencore.zoo.base import ZooModel
from gencore.zoo.registry import family

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {
    "gan": {"hidden": 16, "latent_dim": 4},
    "cgan": {"hidden": 16, "latent_dim": 4},
    "vae": {"hidden": 16, "latent_dim": 2},
    "cvae": {"hidden": 16, "latent_dim": 2},
    "dae": {"hidden": 16, "bottleneck": 4, "chain_steps": 1},
    "diffusion": {"channels": 8},
    "latent_diffusion": {"vae_steps": 1, "hidden": 16, "den_hidden": 16, "latent_dim": 2},
    "flow_matching": {"channels": 8},
    "realnvp": {"hidden": 8, "transforms": 2},
    "glow": {"hidden": 8, "flow_steps": 1},
}


def test_registry_holds_zoo_models_under_their_names():
    for name, cls in zoo.MODELS.items():
        assert issubclass(cls, ZooModel) and cls.name == name and family(name) is cls
        assert {"steps", "batch_size", "lr"} <= set(cls.defaults)
        assert not cls.guidance or cls.samplers, name
    with pytest.raises(ValueError, match="name must be one of"):
        family("nope")


@pytest.mark.parametrize("name", list(zoo.MODELS))
def test_family_round_trips_through_save_and_load(tmp_path, name):
    model, metrics, config = zoo.train(name, steps=2, evaluate_model=False, **TINY.get(name, {}))
    assert isinstance(model, ZooModel) and metrics["train_seconds"] >= 0 and config["kind"] == name
    kw = {"steps": 2} if model.samplers else {}
    y = torch.arange(4) % model.num_classes if model.conditional else None
    x, _ = zoo.sample(model, 4, y, seed=3, **kw)
    assert x.shape == (4, 1, 8, 8) and torch.isfinite(x).all()
    zoo.save(model, tmp_path / "m")
    loaded = zoo.load(tmp_path / "m")
    assert type(loaded) is type(model) and loaded.config == config
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(zoo.sample(loaded, 4, y, seed=3, **kw)[0], x)
