from __future__ import annotations

import json

import pytest
import torch

from gencore import zoo
from gencore.checkpoint import CheckpointError

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = {"eval_samples": 60}
TINY_DIFF = {"channels": 8, "eval_samples": 40, "eval_samplers": [["ddim", 3], ["dpmpp_2m", 3]], "sample_steps": 3}


def _params(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_registry_and_data_names():
    expected = {"naive_bayes", "gan", "cgan", "vae", "cvae", "dae", "diffusion", "latent_diffusion",
                "flow_matching", "realnvp", "glow"}
    assert expected <= set(zoo.MODELS)
    assert "digits" in zoo.DATA and "moons" in zoo.DATA


def test_bad_names_and_options():
    with pytest.raises(ValueError, match="name must be one of"):
        zoo.train("transformer")
    with pytest.raises(ValueError, match="data must be one of"):
        zoo.train("gan", data="mnist")
    with pytest.raises(ValueError, match="data='moons'"):
        zoo.train("diffusion", data="moons")
    with pytest.raises(ValueError, match="no class labels"):
        zoo.train("cgan", data="moons")
    with pytest.raises(ValueError, match="unknown option"):
        zoo.train("gan", steps=1, widthh=3)
    with pytest.raises(ValueError, match="steps"):
        zoo.train("gan", steps=-1)
    with pytest.raises(ValueError, match="threads"):
        zoo.train("gan", steps=1, threads=0)


def test_naive_bayes_matches_sklearn_and_samples():
    model, metrics, config = zoo.train("naive_bayes", **FAST)
    assert metrics["test_accuracy"] == metrics["sklearn_test_accuracy"]
    assert metrics["max_abs_proba_diff_vs_sklearn"] < 1e-8
    x, _ = zoo.sample(model, 20, y=torch.arange(20) % 10, seed=1)
    assert x.shape == (20, 1, 8, 8) and float(x.min()) >= 0 and float(x.max()) <= 1
    assert config["kind"] == "naive_bayes"


@pytest.mark.parametrize("name", ["gan", "cgan"])
def test_gan_family_trains_reproducibly(name):
    a, m, _ = zoo.train(name, steps=15, seed=3, **FAST)
    b, _, _ = zoo.train(name, steps=15, seed=3, **FAST)
    c, _, _ = zoo.train(name, steps=15, seed=4, **FAST)
    assert _same(_params(a), _params(b)) and not _same(_params(a), _params(c))
    assert m["digits_fd"] > 0 and set(m["final_losses"]) == {"discriminator", "generator"}
    if name == "cgan":
        assert 0 <= m["class_accuracy"] <= 1


def test_gan_on_a_toy_improves_sliced_wasserstein():
    _, short, _ = zoo.train("gan", data="8gaussians", steps=5, hidden=64, **FAST)
    _, long, _ = zoo.train("gan", data="8gaussians", steps=400, hidden=64, lr=1e-3, **FAST)
    assert long["sliced_wasserstein"] < short["sliced_wasserstein"]


def test_dae_denoises_better_than_the_noisy_input():
    _, m, _ = zoo.train("dae", steps=300, **FAST)
    for level in (300, 500):
        assert m[f"mse_t{level}"] < m[f"noisy_mse_t{level}"]


def test_diffusion_samples_with_every_sampler_and_guidance():
    from gencore.diffusion.sampling import SAMPLERS

    model, m, _ = zoo.train("diffusion", steps=4, **TINY_DIFF)
    assert {"digits_fd_ddim_3", "class_accuracy_dpmpp_2m_3"} <= set(m)
    for s in SAMPLERS:
        x, _ = zoo.sample(model, 3, y=torch.tensor([1, 2, 3]), sampler=s, steps=2, guidance_scale=3.0, seed=0)
        assert x.shape == (3, 1, 8, 8) and torch.isfinite(x).all(), s
    a, _ = zoo.sample(model, 2, y=4, sampler="ddim", steps=2, seed=5)
    b, _ = zoo.sample(model, 2, y=4, sampler="ddim", steps=2, seed=5)
    assert torch.equal(a, b)


def test_flow_matching_trains_and_samples():
    model, m, _ = zoo.train("flow_matching", steps=4, channels=8, eval_samples=20, sample_steps=2,
                            eval_samplers=[["flow_match_euler", 2]])
    assert "digits_fd_flow_match_euler_2" in m
    x, _ = zoo.sample(model, 2, y=[0, 9], steps=3, guidance_scale=2.0)
    assert x.shape == (2, 1, 8, 8)
    with pytest.raises(ValueError, match="sampler"):
        zoo.sample(model, 2, y=0, sampler="ddim")


@pytest.mark.parametrize("name,data", [("realnvp", "moons"), ("realnvp", "digits"), ("glow", "digits")])
def test_flows_report_likelihoods(name, data):
    kw = {"hidden": 16, "flow_steps": 1} if name == "glow" else {"hidden": 32, "transforms": 2}
    _, m, _ = zoo.train(name, data=data, steps=10, **kw, **FAST)
    assert torch.isfinite(torch.tensor(m["test_nll_nats"]))
    if data == "digits":
        assert m["test_bits_per_dim"] > 0 and "digits_fd" in m
    else:
        assert "sliced_wasserstein" in m and "mmd" in m


def test_save_load_round_trip(tmp_path):
    model, _, config = zoo.train("cgan", steps=3, out=tmp_path, **FAST)
    assert json.loads((tmp_path / "metrics.json").read_text())["train_seconds"] > 0
    loaded = zoo.load(tmp_path / "model")
    assert loaded.config == config
    a, _ = zoo.sample(model, 5, y=2, seed=7)
    b, _ = zoo.sample(loaded, 5, y=2, seed=7)
    assert torch.equal(a, b)
    nb, _, _ = zoo.train("naive_bayes", evaluate_model=False)
    zoo.save(nb, tmp_path / "nb")
    nb2 = zoo.load(tmp_path / "nb")
    torch.testing.assert_close(zoo.sample(nb2, 4, y=1)[0], zoo.sample(nb, 4, y=1)[0])
    with pytest.raises(CheckpointError, match="expected"):
        from gencore.checkpoint import load_checkpoint

        load_checkpoint(tmp_path / "nb", kind="gan")


@pytest.mark.parametrize("name,extra", [("cgan", {}), ("diffusion", {"channels": 8, "ema_decay": 0.9})])
def test_resume_equals_uninterrupted(tmp_path, name, extra):
    full, _, _ = zoo.train(name, steps=9, seed=1, evaluate_model=False, **extra)
    # interrupted after 6 steps (checkpoints at 3 and 6), then resumed to 9
    zoo.train(name, steps=6, seed=1, out=tmp_path, checkpoint_every=3, evaluate_model=False, **extra)
    assert (tmp_path / "train_state.safetensors").is_file()
    resumed, _, _ = zoo.train(name, steps=9, seed=1, out=tmp_path, resume=True, evaluate_model=False, **extra)
    assert _same(_params(full), _params(resumed))


def test_sample_bad_input_names_the_argument():
    cond, _, _ = zoo.train("cgan", steps=1, evaluate_model=False)
    uncond, _, _ = zoo.train("gan", steps=1, evaluate_model=False)
    with pytest.raises(ValueError, match="y is required"):
        zoo.sample(cond, 3)
    with pytest.raises(ValueError, match="y must hold labels"):
        zoo.sample(cond, 2, y=[0, 10])
    with pytest.raises(ValueError, match="y must be None"):
        zoo.sample(uncond, 2, y=1)
    with pytest.raises(ValueError, match="guidance_scale"):
        zoo.sample(uncond, 2, guidance_scale=3.0)
    with pytest.raises(ValueError, match="sampler"):
        zoo.sample(uncond, 2, sampler="ddim")
    with pytest.raises(ValueError, match="n must"):
        zoo.sample(uncond, -1)
    with pytest.raises(TypeError, match="model"):
        zoo.sample("gan", 2)
    diff, _, _ = zoo.train("diffusion", steps=1, channels=8, evaluate_model=False)
    with pytest.raises(ValueError, match="sampler must be one of"):
        zoo.sample(diff, 2, y=0, sampler="plms")
    with pytest.raises(ValueError, match="steps"):
        zoo.sample(diff, 2, y=0, steps=0)
    with pytest.raises(ValueError, match="guidance_scale"):
        zoo.sample(diff, 2, y=0, guidance_scale=float("nan"))
    assert zoo.sample(uncond, 0)[0].shape == (0, 1, 8, 8)


def test_trainer_rejects_non_finite_data_and_bad_output_dir(tmp_path):
    from gencore.models.trainer import Trainer

    model = zoo.build(zoo.make_config("gan", steps=1))
    x = torch.zeros(8, 64)
    x[3, 5] = float("nan")
    with pytest.raises(ValueError, match="data must be finite"):
        Trainer(model, (x, torch.zeros(8, dtype=torch.long)), steps=1, batch_size=4).run()
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ValueError, match="out="):
        zoo.train("gan", steps=1, out=blocker / "sub")
