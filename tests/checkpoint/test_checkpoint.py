import json

import pytest
import torch

from gencore.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_training_state,
    save_checkpoint,
    save_training_state,
)


def _model():
    return torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 1))


def test_round_trip(tmp_path):
    t = {"a": torch.randn(3, 4), "b": torch.arange(5)}
    p = save_checkpoint(tmp_path / "ck", t, {"kind": "toy", "width": 4})
    assert p.suffix == ".safetensors"
    assert json.loads(p.with_suffix(".json").read_text())["width"] == 4
    got, cfg = load_checkpoint(tmp_path / "ck", kind="toy")
    assert cfg == {"kind": "toy", "width": 4}
    assert torch.equal(got["a"], t["a"]) and torch.equal(got["b"], t["b"])
    assert not [f for f in tmp_path.iterdir() if f.name.endswith(".tmp")]


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.safetensors")
    p = save_checkpoint(tmp_path / "ck.safetensors", {"a": torch.ones(1000)}, {"kind": "vae"})
    with pytest.raises(CheckpointError, match="expected 'gan'"):
        load_checkpoint(p, kind="gan")
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(p)
    (tmp_path / "x.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "x.safetensors")
    with pytest.raises(ValueError, match="kind"):
        save_checkpoint(tmp_path / "y", {}, {})


def test_interrupted_write_keeps_old_file(tmp_path, monkeypatch):
    p = save_checkpoint(tmp_path / "ck", {"a": torch.zeros(3)}, {"kind": "toy", "v": 1})
    import gencore.checkpoint as ck

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(ck.os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path / "ck", {"a": torch.ones(3)}, {"kind": "toy", "v": 2})
    monkeypatch.undo()
    got, cfg = load_checkpoint(p)
    assert cfg["v"] == 1 and torch.equal(got["a"], torch.zeros(3))
    assert not [f for f in tmp_path.iterdir() if f.name.endswith(".tmp")]


def _train(steps, start_state=None, save_at=None, path=None):
    torch.manual_seed(0)
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(123)
    step = 0
    if start_state is not None:
        step, _, _ = load_training_state(start_state, model=model, optimizer=opt, generator=gen, kind="toy")
    while step < steps:
        x = torch.randn(16, 3, generator=gen)
        loss = (model(x) - x.sum(1, keepdim=True)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if save_at is not None and step == save_at:
            save_training_state(path, model=model, optimizer=opt, generator=gen, step=step,
                                config={"kind": "toy"})
    return model


def test_resume_equals_uninterrupted(tmp_path):
    full = _train(20)
    _train(20, save_at=7, path=tmp_path / "state")
    resumed = _train(20, start_state=tmp_path / "state.safetensors")
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


def test_state_from_other_model(tmp_path):
    m = _model()
    save_training_state(tmp_path / "s", model=m, step=1, config={"kind": "toy"})
    with pytest.raises(CheckpointError, match="does not fit"):
        load_training_state(tmp_path / "s", model=torch.nn.Linear(2, 2), kind="toy")
