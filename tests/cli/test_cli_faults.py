"""``gencore train`` / ``gencore sample`` under faults: kills, a full disk, bad checkpoints, changed options.

Every case uses the tiniest VAE on a 2-D toy so the whole file stays well under a minute.
"""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import gencore
import gencore.checkpoint as ck
from gencore import cli, zoo
from gencore.checkpoint import save_checkpoint

PYTHON_DIR = str(Path(gencore.__file__).resolve().parent.parent)
TINY = ["vae", "--data", "moons", "--quiet", "--set", "hidden=8", "--set", "latent_dim=2", "--set", "batch_size=16",
        "--set", "eval_samples=10", "--set", "iwae_k=2"]


def _train(out, *extra):
    return cli.main(["train", *TINY, "--out", str(out), *extra])


def _files(directory):
    return {f.name: f.read_bytes() for f in sorted(Path(directory).iterdir())}


def _tmp_files(directory):
    return sorted(f.name for f in Path(directory).iterdir() if f.name.endswith(".tmp"))


def _comparable(metrics):
    return {k: v for k, v in metrics.items() if not k.endswith("_seconds")}


def _checkpoint_step(out: Path) -> int:
    """The step of ``out``'s training state as its readable JSON copy says (-1: none yet)."""
    try:
        return int(json.loads((out / "train_state.json").read_text())["training_state"]["step"])
    except (OSError, ValueError, KeyError):
        return -1


def test_killed_training_resumes_byte_exact(tmp_path, capsys):
    """SIGKILL at a random step (plus a random fraction of a step, so some kills land inside a write)."""
    steps = 80
    ref = tmp_path / "ref"
    assert _train(ref, "--steps", str(steps)) == 0
    capsys.readouterr()
    want = _files(ref)
    env = dict(os.environ)
    env["PYTHONPATH"] = PYTHON_DIR + os.pathsep + env.get("PYTHONPATH", "")
    seed = int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    for run in range(3):
        out = tmp_path / f"run{run}"
        target, jitter = rng.randrange(1, steps), rng.uniform(0.0, 0.02)
        proc = subprocess.Popen([sys.executable, "-m", "gencore", "train", *TINY, "--out", str(out),
                                 "--steps", str(steps), "--checkpoint-every", "1"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while _checkpoint_step(out) < target and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.002)
            time.sleep(jitter)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        why = (f"run {run}: killed {jitter * 1e3:.1f} ms after step {target} was saved, with the state at "
               f"step {_checkpoint_step(out)} (random seed {seed})")
        assert _train(out, "--steps", str(steps), "--checkpoint-every", "1", "--resume") == 0, why
        capsys.readouterr()
        assert _tmp_files(out) == [], why
        got = _files(out)
        assert got["model.safetensors"] == want["model.safetensors"], why
        assert got["model.json"] == want["model.json"], why
        m_got, m_want = json.loads(got["metrics.json"]), json.loads(want["metrics.json"])
        assert "final_losses" in m_got, why
        assert _comparable(m_got) == _comparable(m_want), why


def test_resume_after_the_last_step_reports_final_losses(tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(out, "--steps", "6", "--checkpoint-every", "2") == 0
    capsys.readouterr()
    want = json.loads((out / "metrics.json").read_text())
    (out / "metrics.json").unlink()
    (out / "model.safetensors").unlink()
    assert _train(out, "--steps", "6", "--checkpoint-every", "2", "--resume") == 0
    got = json.loads((out / "metrics.json").read_text())
    assert got["final_losses"] == want["final_losses"]
    assert json.loads(capsys.readouterr().out)["final_losses"] == want["final_losses"]


def test_stray_temporaries_are_removed_on_resume(tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(out, "--steps", "4", "--checkpoint-every", "2") == 0
    for name in (".train_state.safetensors.x1y2z3.tmp", ".train_state.json.x1y2z3.tmp", ".metrics.json.abc.tmp"):
        (out / name).write_bytes(b"half")
    assert _train(out, "--steps", "4", "--checkpoint-every", "2", "--resume") == 0
    capsys.readouterr()
    assert _tmp_files(out) == []


@pytest.mark.parametrize("option,value", [("--seed", "1"), ("--set", "lr=0.01"), ("--set", "hidden=16")])
def test_resume_refuses_other_training_options(tmp_path, capsys, option, value):
    out = tmp_path / "run"
    assert _train(out, "--steps", "4", "--checkpoint-every", "2") == 0
    capsys.readouterr()
    before = _files(out)
    assert _train(out, "--steps", "8", "--checkpoint-every", "2", "--resume", option, value) == 2
    err = capsys.readouterr().err
    name = value.split("=")[0] if option == "--set" else "seed"
    assert f"resume: checkpoint {out / 'train_state'}" in err and f"{name} (checkpoint" in err, err
    assert "Traceback" not in err
    assert _files(out) == before


def test_resume_accepts_more_steps_and_other_evaluation_options(tmp_path, capsys):
    out, ref = tmp_path / "run", tmp_path / "ref"
    assert _train(out, "--steps", "4", "--checkpoint-every", "2") == 0
    assert _train(out, "--steps", "8", "--checkpoint-every", "2", "--resume", "--set", "eval_samples=20") == 0
    assert _train(ref, "--steps", "8", "--set", "eval_samples=20") == 0
    capsys.readouterr()
    assert (out / "model.safetensors").read_bytes() == (ref / "model.safetensors").read_bytes()


def test_full_disk_is_a_clean_error_and_keeps_the_previous_checkpoint(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    assert _train(out, "--steps", "4", "--checkpoint-every", "2") == 0
    capsys.readouterr()
    before = _files(out)
    real_fsync = os.fsync

    def fsync(fd):
        if "train_state.safetensors." in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(ck.os, "fsync", fsync)
    assert _train(out, "--steps", "8", "--checkpoint-every", "2", "--resume") == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and "train_state.safetensors" in err, err
    assert "Traceback" not in err
    assert _files(out) == before
    monkeypatch.undo()
    assert _train(out, "--steps", "8", "--checkpoint-every", "2", "--resume") == 0


@pytest.fixture
def vae_checkpoint(tmp_path):
    model = zoo.build(zoo.make_config("vae", "moons", hidden=8, latent_dim=2))
    return zoo.save(model, tmp_path / "model")


def _sample(path, tmp_path, capsys):
    code = cli.main(["sample", str(path), "-n", "4", "--out", str(tmp_path / "samples"), "--quiet"])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def test_sample_from_a_checkpoint_of_another_kind(tmp_path, capsys, vae_checkpoint):
    tensors, config = ck.load_checkpoint(vae_checkpoint)
    path = save_checkpoint(tmp_path / "wrong", tensors, {**config, "kind": "gan"})
    code, err = _sample(path, tmp_path, capsys)
    assert code == 2
    assert "kind 'gan'" in err and "'loss'" in err and "wrong.safetensors" in err, err
    assert not (tmp_path / "samples" / "samples.npz").exists()


def test_sample_from_a_corrupt_checkpoint(tmp_path, capsys, vae_checkpoint):
    assert _sample(vae_checkpoint, tmp_path, capsys)[0] == 0
    blob = bytearray(vae_checkpoint.read_bytes())
    blob[-3] ^= 0x10  # the last tensor's data
    vae_checkpoint.write_bytes(bytes(blob))
    code, err = _sample(vae_checkpoint, tmp_path, capsys)
    assert code == 2 and "does not match its sha256 checksum" in err and "tensor '" in err, err
    vae_checkpoint.write_bytes(bytes(blob[: len(blob) - 100]))
    code, err = _sample(vae_checkpoint, tmp_path, capsys)
    assert code == 2 and "truncated or corrupt" in err, err


def test_sample_from_a_checkpoint_with_malformed_json(tmp_path, capsys):
    from safetensors.torch import save

    path = tmp_path / "bad.safetensors"
    path.write_bytes(save({"a": torch.ones(1)}, metadata={"format": ck.FORMAT, "config": '{"kind": "vae"'}))
    code, err = _sample(path, tmp_path, capsys)
    assert code == 2 and "bad.safetensors" in err and "not valid JSON" in err and "line 1" in err, err


def test_file_size_limit_in_a_real_process(tmp_path, capsys):
    """A real write that the system refuses (RLIMIT_FSIZE: EFBIG) is handled like a full disk."""
    import resource

    out = tmp_path / "run"
    assert _train(out, "--steps", "4", "--checkpoint-every", "2") == 0
    capsys.readouterr()
    before = _files(out)
    limit = len(before["train_state.safetensors"]) // 2
    assert max(len(before[n]) for n in ("model.json", "metrics.json")) < limit

    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = dict(os.environ)
    env["PYTHONPATH"] = PYTHON_DIR + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    res = subprocess.run([sys.executable, "-m", "gencore", "train", *TINY, "--out", str(out), "--steps", "8",
                          "--checkpoint-every", "2", "--resume"], env=env, capture_output=True, text=True,
                         timeout=120, preexec_fn=limit_file_size)
    assert res.returncode == 1, res.stderr
    assert "File too large" in res.stderr and "train_state.safetensors" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    assert _files(out) == before


def test_resume_from_a_corrupt_or_foreign_training_state(tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(out, "--steps", "4", "--checkpoint-every", "2") == 0
    capsys.readouterr()
    assert cli.main(["train", "realnvp", "--data", "moons", "--steps", "2", "--out", str(out), "--resume",
                     "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "holds a 'vae' model, expected 'realnvp'" in err and "Traceback" not in err, err
    state = out / "train_state.safetensors"
    blob = bytearray(state.read_bytes())
    blob[-5] ^= 0x01
    state.write_bytes(bytes(blob))
    assert _train(out, "--steps", "8", "--checkpoint-every", "2", "--resume") == 2
    err = capsys.readouterr().err
    assert "train_state.safetensors is corrupt: tensor '" in err and "sha256" in err, err
    state.write_bytes(bytes(blob[:-40]))
    assert _train(out, "--steps", "8", "--checkpoint-every", "2", "--resume") == 2
    assert "truncated or corrupt" in capsys.readouterr().err
