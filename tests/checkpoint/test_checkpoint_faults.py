"""Checkpoints under faults: a full disk, killed writes, flipped bits, malformed metadata."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save

import gencore.checkpoint as ck
from gencore.checkpoint import (
    FORMAT,
    CheckpointError,
    load_checkpoint,
    remove_stale_temporaries,
    save_checkpoint,
    tensor_digest,
)


def _tmp_files(directory):
    return sorted(f.name for f in directory.iterdir() if f.name.endswith(".tmp"))


def _data_offset(blob: bytes, name: str) -> int:
    """Byte offset in ``blob`` of the first data byte of tensor ``name``."""
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + n])
    return 8 + n + header[name]["data_offsets"][0]


@pytest.mark.parametrize("failing", [".safetensors.", ".json."])
def test_full_disk_leaves_previous_checkpoint_intact(tmp_path, monkeypatch, failing):
    p = save_checkpoint(tmp_path / "ck", {"a": torch.zeros(64)}, {"kind": "toy", "v": 1})
    before = {f.name: f.read_bytes() for f in tmp_path.iterdir()}
    real_fsync = os.fsync

    def fsync(fd):
        if failing in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(ck.os, "fsync", fsync)
    with pytest.raises(OSError, match="No space left on device") as info:
        save_checkpoint(tmp_path / "ck", {"a": torch.ones(64)}, {"kind": "toy", "v": 2})
    monkeypatch.undo()
    assert info.value.errno == errno.ENOSPC
    assert "ck." in str(info.value)
    assert {f.name: f.read_bytes() for f in tmp_path.iterdir()} == before
    got, cfg = load_checkpoint(p)
    assert cfg["v"] == 1 and torch.equal(got["a"], torch.zeros(64))


def test_stale_temporaries_are_removed_by_the_next_write(tmp_path):
    stale = [tmp_path / ".ck.safetensors.k1ll3d.tmp", tmp_path / ".ck.json.abc123.tmp"]
    other = tmp_path / ".other.safetensors.abc123.tmp"
    for f in [*stale, other]:
        f.write_bytes(b"partial")
    save_checkpoint(tmp_path / "ck", {"a": torch.ones(2)}, {"kind": "toy"})
    assert _tmp_files(tmp_path) == [other.name]
    stale[0].write_bytes(b"partial")
    assert remove_stale_temporaries(tmp_path / "ck.json") == [stale[0]]


def test_temporaries_of_running_writers_are_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    killed = tmp_path / f".ck.safetensors.{int(dead.stdout)}.abc123.tmp"
    running = tmp_path / f".ck.safetensors.{os.getpid()}.def456.tmp"
    for f in (killed, running):
        f.write_bytes(b"partial")
    save_checkpoint(tmp_path / "ck", {"a": torch.ones(2)}, {"kind": "toy"})
    assert _tmp_files(tmp_path) == [running.name]


def test_bit_flip_in_tensor_data_is_detected(tmp_path):
    p = save_checkpoint(tmp_path / "ck", {"a": torch.randn(16), "weight": torch.randn(4, 4)}, {"kind": "toy"})
    blob = bytearray(p.read_bytes())
    blob[_data_offset(bytes(blob), "weight") + 5] ^= 0x04
    p.write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="tensor 'weight' does not match its sha256"):
        load_checkpoint(p)


def test_changed_config_text_is_detected(tmp_path):
    p = save_checkpoint(tmp_path / "ck", {"a": torch.ones(2)}, {"kind": "toy", "lr": 0.001})
    blob = p.read_bytes()
    assert blob.count(b"0.001") == 1
    p.write_bytes(blob.replace(b"0.001", b"0.003"))
    with pytest.raises(CheckpointError, match="config does not match its checksum"):
        load_checkpoint(p)


def test_checksums_are_sha256_of_the_stored_bytes(tmp_path):
    t = {"f": torch.randn(3, 5), "h": torch.randn(7).half(), "i": torch.arange(4), "b": torch.tensor([True, False]),
         "s": torch.tensor(2.5), "e": torch.zeros(0, 3)}
    p = save_checkpoint(tmp_path / "ck", t, {"kind": "toy"})
    blob = p.read_bytes()
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + n])
    digests = json.loads(header["__metadata__"]["sha256"])
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        assert digests[name] == hashlib.sha256(blob[8 + n + start:8 + n + end]).hexdigest() == tensor_digest(t[name])
    got, _ = load_checkpoint(p)
    assert all(torch.equal(got[k], t[k]) for k in t)


def test_checkpoints_without_checksums_still_load(tmp_path):
    p = tmp_path / "old.safetensors"
    p.write_bytes(save({"a": torch.arange(3.0)}, metadata={"format": FORMAT, "config": '{"kind": "toy"}'}))
    got, cfg = load_checkpoint(p, kind="toy")
    assert cfg == {"kind": "toy"} and torch.equal(got["a"], torch.arange(3.0))


def test_malformed_config_json_names_the_file(tmp_path):
    p = tmp_path / "bad.safetensors"
    p.write_bytes(save({"a": torch.ones(1)}, metadata={"format": FORMAT, "config": '{"kind": "toy",'}))
    with pytest.raises(CheckpointError, match=r"bad\.safetensors: its 'config' metadata is not valid JSON"):
        load_checkpoint(p)
    p.write_bytes(save({"a": torch.ones(1)}, metadata={"format": FORMAT, "config": "[1, 2]"}))
    with pytest.raises(CheckpointError, match="must be a JSON object"):
        load_checkpoint(p)


def test_corrupt_header_names_the_file(tmp_path):
    p = save_checkpoint(tmp_path / "ck", {"a": torch.ones(4)}, {"kind": "toy"})
    blob = bytearray(p.read_bytes())
    blob[9] = ord("#")  # inside the header's JSON
    p.write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match=r"ck\.safetensors is truncated or corrupt"):
        load_checkpoint(p)
    p.write_bytes(b"")
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(p)
