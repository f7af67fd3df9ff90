"""Atomic checkpoints: manifest and checksums, keep-last-K, corrupt ones refused, a full disk mid-save."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest
import torch

import grpo.run.checkpoint as checkpoint_module
from grpo.run.checkpoint import (
    CheckpointError,
    list_checkpoints,
    read_checkpoint,
    remove_staging_leftovers,
    write_checkpoint,
)


def save(root: Path, step: int, keep: int = 3) -> Path:
    tensors = {"policy": {"w": torch.full((3, 2), float(step)), "b": torch.arange(4)}, "rng": {"s": torch.ones(5)}}
    return write_checkpoint(root, step, tensors, {"step": step, "note": "x"}, f'{{"step": {step}}}\n', keep)


def test_round_trip_is_exact_and_manifest_lists_every_file(tmp_path: Path):
    path = save(tmp_path, 7)
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["step"] == 7
    assert set(manifest["files"]) == {"policy.safetensors", "rng.safetensors", "state.json", "metrics.jsonl"}
    loaded = read_checkpoint(path)
    assert loaded.step == 7 and loaded.state == {"step": 7, "note": "x"} and loaded.history == '{"step": 7}\n'
    assert torch.equal(loaded.tensors["policy"]["w"], torch.full((3, 2), 7.0))
    assert torch.equal(loaded.tensors["policy"]["b"], torch.arange(4))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def test_keeps_only_the_newest_k(tmp_path: Path):
    for step in (2, 4, 6, 8):
        save(tmp_path, step, keep=2)
    assert [step for step, _ in list_checkpoints(tmp_path)] == [6, 8]


def test_corrupt_checkpoint_is_refused_and_the_previous_one_offered(tmp_path: Path):
    save(tmp_path, 2)
    newest = save(tmp_path, 4)
    data = bytearray((newest / "policy.safetensors").read_bytes())
    data[-1] ^= 0xFF  # one flipped bit in the tensor data
    (newest / "policy.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError) as error:
        read_checkpoint(newest, lambda previous: f"grpo train --resume {previous}")
    assert str(error.value) == (
        f"checkpoint {newest} is corrupt: policy.safetensors fails its sha256 check; resume from the previous one "
        f"instead: grpo train --resume {tmp_path / 'step-00000002'}"
    )
    assert read_checkpoint(tmp_path / "step-00000002").step == 2


def test_checkpoint_without_manifest_is_not_a_checkpoint(tmp_path: Path):
    path = save(tmp_path, 3)
    (path / "manifest.json").unlink()
    assert list_checkpoints(tmp_path) == []
    with pytest.raises(CheckpointError, match="it has no manifest.json"):
        read_checkpoint(path)


def test_full_disk_during_a_save_leaves_the_previous_checkpoint_intact(tmp_path: Path, monkeypatch):
    previous = save(tmp_path, 5)
    before = {p.name: p.read_bytes() for p in previous.iterdir()}
    real_write = checkpoint_module._write_tensors
    calls = []

    def write_then_fill_disk(tensors, path):
        calls.append(path.name)
        if len(calls) == 2:  # the first tensor file is written, the disk fills on the second
            path.write_bytes(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(tensors, path)

    monkeypatch.setattr(checkpoint_module, "_write_tensors", write_then_fill_disk)
    with pytest.raises(CheckpointError) as error:
        save(tmp_path, 10)
    assert str(error.value) == (
        f"could not save checkpoint {tmp_path / 'step-00000010'}: No space left on device (errno 28); "
        f"the previous checkpoint {previous} is intact"
    )
    assert [step for step, _ in list_checkpoints(tmp_path)] == [5]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-00000005"]  # staging removed too
    assert {p.name: p.read_bytes() for p in previous.iterdir()} == before
    assert torch.equal(read_checkpoint(previous).tensors["policy"]["w"], torch.full((3, 2), 5.0))


def test_a_killed_save_leaves_only_a_hidden_directory_that_resume_removes(tmp_path: Path):
    save(tmp_path, 1)
    (tmp_path / ".step-00000002.abc").mkdir()  # what SIGKILL during a save leaves behind
    (tmp_path / ".step-00000002.abc" / "policy.safetensors").write_bytes(b"half")
    assert [step for step, _ in list_checkpoints(tmp_path)] == [1]
    remove_staging_leftovers(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-00000001"]
