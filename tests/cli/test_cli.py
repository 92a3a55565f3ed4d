import json
import os
import subprocess
import sys

import numpy as np
import pytest

from gencore import cli


def run_cli(*args, cwd=None):
    env = dict(os.environ)
    return subprocess.run([sys.executable, "-m", "gencore", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=600)


def test_train_then_sample_naive_bayes(tmp_path, capsys):
    out = tmp_path / "nb"
    assert cli.main(["train", "naive_bayes", "--out", str(out), "--quiet"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["test_accuracy"] == pytest.approx(metrics["sklearn_test_accuracy"])
    assert (out / "model.safetensors").is_file() and (out / "model.json").is_file()
    assert json.loads((out / "metrics.json").read_text())["test_accuracy"] == metrics["test_accuracy"]
    samples = tmp_path / "s"
    assert cli.main(["sample", str(out / "model.safetensors"), "-n", "20", "--out", str(samples), "--quiet"]) == 0
    data = np.load(samples / "samples.npz")
    assert data["x"].shape == (20, 1, 8, 8)
    assert sorted(set(data["y"].tolist())) == list(range(10))
    from PIL import Image

    assert Image.open(samples / "samples.png").size[0] > 0


def test_train_resume_and_sample_diffusion(tmp_path, capsys):
    out = tmp_path / "dm"
    common = ["train", "diffusion", "--out", str(out), "--quiet", "--set", "channels=8",
              "--set", "eval_samples=20", "--set", 'eval_samplers=[["ddim", 2]]', "--set", "sample_steps=2"]
    assert cli.main([*common, "--steps", "4", "--checkpoint-every", "2"]) == 0
    assert (out / "train_state.safetensors").is_file()
    capsys.readouterr()
    assert cli.main(["sample", str(out / "model.safetensors"), "-n", "10", "--sampler", "dpmpp_2m",
                     "--steps", "3", "--guidance", "2.0", "--label", "3", "--out", str(tmp_path / "s"),
                     "--quiet"]) == 0
    data = np.load(tmp_path / "s" / "samples.npz")
    assert data["x"].shape == (10, 1, 8, 8) and (data["y"] == 3).all()
    assert np.isfinite(data["x"]).all()


@pytest.mark.parametrize(
    "argv,message",
    [
        (["train", "no_such_model"], "no_such_model"),
        (["train", "vae", "--data", "no_such_data"], "no_such_data"),
        (["sample", "missing.safetensors"], "not found"),
    ],
)
def test_bad_input_exits_nonzero(argv, message, tmp_path, capsys):
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


def test_sample_rejects_bad_checkpoints_and_options(tmp_path, capsys):
    out = tmp_path / "nb"
    assert cli.main(["train", "naive_bayes", "--out", str(out), "--quiet"]) == 0
    ck = out / "model.safetensors"
    assert cli.main(["sample", str(ck), "--guidance", "3", "--out", str(tmp_path / "s1")]) == 2
    assert "guidance" in capsys.readouterr().err
    assert cli.main(["sample", str(ck), "--sampler", "ddim", "--out", str(tmp_path / "s2")]) == 2
    assert "sampler" in capsys.readouterr().err
    blob = ck.read_bytes()
    ck.write_bytes(blob[: len(blob) // 2])
    assert cli.main(["sample", str(ck), "--out", str(tmp_path / "s3")]) == 2
    assert "truncated" in capsys.readouterr().err
    assert not (tmp_path / "s3" / "samples.npz").exists()


def test_unwritable_output(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert cli.main(["train", "naive_bayes", "--out", str(blocker / "sub"), "--quiet"]) == 2
    assert "out" in capsys.readouterr().err
    assert cli.main(["demo", "--fast", "--out", str(blocker / "sub"), "--quiet"]) == 2


def test_demo_writes_samples_and_metrics(tmp_path):
    from gencore import demo

    res = demo.run(tmp_path / "demo", fast=True, train_steps=20, per_class=3, progress=False)
    written = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    assert written["cfg_accuracy"] == res["cfg_accuracy"]
    for sampler, steps in (("ddim", "10"), ("ddim", "25"), ("dpmpp_2m", "5"), ("dpmpp_2m", "10")):
        assert np.isfinite(written["digits_fd"][sampler][steps])
        assert 0.0 <= written["class_accuracy"][sampler][steps] <= 1.0
        t = written["timings"][sampler][steps]
        assert t["fused_seconds"] > 0 and t["reference_seconds"] > 0
    # the fused samplers are a drop-in for the reference path: same samples
    assert written["max_abs_diff_fused_vs_reference"] < 1e-3
    from PIL import Image

    img = Image.open(tmp_path / "demo" / "samples.png")
    assert img.size[1] > img.size[0] / 2  # ten rows of digits
    assert (tmp_path / "demo" / "model.safetensors").is_file()


def test_console_script_entry_point():
    r = run_cli("info", "--json")
    assert r.returncode == 0, r.stderr
    assert "version" in json.loads(r.stdout)
    r = run_cli("train", "nope")
    assert r.returncode == 2 and "nope" in r.stderr
