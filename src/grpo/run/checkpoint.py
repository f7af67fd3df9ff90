"""Atomic checkpoints: written to a temporary directory, fsynced, renamed; a manifest with checksums.

Two kinds live here. `save_model_atomic` writes a `save_pretrained` model directory (the final
policy a user loads with transformers). `write_checkpoint` writes the full training state a resume
needs, as tensor files (safetensors, never pickles) plus JSON, under `<root>/step-NNNNNNNN/`:

    manifest.json      written last: the step and every other file's size and sha256
    <name>.safetensors one per tensor group (policy, reference, optimizer, rng, ...)
    state.json         everything else (scheduler, RNG tuples, data position, counters)
    metrics.jsonl      the metric history up to and including the step

A directory is a checkpoint only once it holds a manifest, and it receives its final name only by
an atomic rename after every file (and the directory) was fsynced, so a crash or a full disk during
a save leaves the previous checkpoints untouched. Loading verifies every checksum first.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from grpo.errors import UserError

MANIFEST = "manifest.json"
STATE_FILE = "state.json"
HISTORY_FILE = "metrics.jsonl"
FORMAT_VERSION = 1
_NAME = re.compile(r"^step-(\d{8})$")


class CheckpointError(UserError):
    """A checkpoint could not be written, or one on disk is incomplete or corrupt."""


@dataclass(frozen=True)
class Checkpoint:
    """A verified checkpoint read back from disk."""

    path: Path
    step: int
    tensors: dict[str, dict[str, torch.Tensor]]  # group name -> tensors
    state: dict[str, Any]
    history: str  # metrics.jsonl text up to `step`


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}"


def _fsync_tree(path: Path) -> None:
    for file in path.rglob("*"):
        if file.is_file():
            with file.open("rb") as handle:
                os.fsync(handle.fileno())
    _fsync_dir(path)


def _fsync_dir(path: Path) -> None:
    directory = os.open(path, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def save_model_atomic(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, target: Path) -> Path:
    """Write model (safetensors) and tokenizer so that `target` is either complete or absent.

    An existing `target` is replaced only after the new copy is fully on disk.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        _fsync_tree(staging)
        if target.exists():
            retired = target.with_name(f".{target.name}.old")
            shutil.rmtree(retired, ignore_errors=True)
            os.replace(target, retired)
            os.replace(staging, target)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _write_tensors(tensors: Mapping[str, torch.Tensor], path: Path) -> None:
    """One safetensors file; contiguous CPU copies so views and device tensors save alike."""
    save_file({key: value.detach().contiguous().cpu() for key, value in tensors.items()}, str(path))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def list_checkpoints(root: Path) -> list[tuple[int, Path]]:
    """(step, path) of every complete checkpoint under `root`, oldest first (manifest present)."""
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = _NAME.match(path.name)
        if match and (path / MANIFEST).is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def _stage(root: Path, step: int, tensors: Mapping[str, Mapping[str, torch.Tensor]], state: Mapping[str, Any],
           history: str) -> Path:
    """Write every file of the checkpoint into a fresh hidden directory, manifest last, fsynced."""
    staging = Path(tempfile.mkdtemp(prefix=f".{checkpoint_name(step)}.", dir=root))
    for group, group_tensors in tensors.items():
        _write_tensors(group_tensors, staging / f"{group}.safetensors")
    (staging / STATE_FILE).write_text(json.dumps(state))
    (staging / HISTORY_FILE).write_text(history)
    files = {
        file.name: {"bytes": file.stat().st_size, "sha256": _sha256(file)} for file in sorted(staging.iterdir())
    }
    manifest = {"format": FORMAT_VERSION, "step": step, "files": files}
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=1))
    _fsync_tree(staging)
    return staging


def write_checkpoint(
    root: Path,
    step: int,
    tensors: Mapping[str, Mapping[str, torch.Tensor]],
    state: Mapping[str, Any],
    history: str,
    keep: int,
) -> Path:
    """Save a checkpoint of `step` atomically, then delete all but the newest `keep` checkpoints.

    On any OS error (a full disk, a missing permission) the half-written copy is removed, nothing
    already on disk changes, and a `CheckpointError` says what happened and which checkpoint remains.
    """
    root.mkdir(parents=True, exist_ok=True)
    target = root / checkpoint_name(step)
    staging = None
    try:
        staging = _stage(root, step, tensors, state, history)
        if target.exists():  # re-saving a step (a resumed run reaching a saved step again): replace
            shutil.rmtree(target)
        os.replace(staging, target)
        _fsync_dir(root)
    except OSError as error:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        for leftover in root.glob(f".{checkpoint_name(step)}.*"):
            shutil.rmtree(leftover, ignore_errors=True)
        previous = list_checkpoints(root)
        kept = f"the previous checkpoint {previous[-1][1]} is intact" if previous else "no earlier checkpoint exists"
        raise CheckpointError(
            f"could not save checkpoint {target}: {error.strerror or error} (errno {error.errno}); {kept}"
        ) from None
    for _, old in list_checkpoints(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def remove_staging_leftovers(root: Path) -> None:
    """Delete hidden half-written directories a killed save left behind (they never became checkpoints)."""
    if root.is_dir():
        for path in root.glob(".step-*"):
            shutil.rmtree(path, ignore_errors=True)


def _verify(path: Path) -> dict[str, Any]:
    """The manifest of `path` after checking every file's size and sha256; a problem raises ValueError."""
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise ValueError("it has no manifest.json (the save never finished)")
    try:
        manifest = json.loads(manifest_path.read_text())
        files = manifest["files"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise ValueError("its manifest.json is unreadable") from None
    for name, entry in files.items():
        file = path / name
        if not file.is_file():
            raise ValueError(f"{name} is missing")
        if file.stat().st_size != entry["bytes"] or _sha256(file) != entry["sha256"]:
            raise ValueError(f"{name} fails its sha256 check")
    return manifest


def read_checkpoint(path: Path, resume_hint: Callable[[Path], str] = str) -> Checkpoint:
    """Load and verify one checkpoint; a corrupt one is refused, naming the previous one to use.

    `resume_hint(previous_path)` renders how to resume from the previous checkpoint.
    """
    try:
        manifest = _verify(path)
    except ValueError as problem:
        earlier = [p for step, p in list_checkpoints(path.parent) if p != path and p.name < path.name]
        offer = f"; resume from the previous one instead: {resume_hint(earlier[-1])}" if earlier else \
            "; no earlier checkpoint exists"
        raise CheckpointError(f"checkpoint {path} is corrupt: {problem}{offer}") from None
    tensors = {
        name.removesuffix(".safetensors"): load_file(str(path / name))
        for name in manifest["files"]
        if name.endswith(".safetensors")
    }
    state = json.loads((path / STATE_FILE).read_text())
    return Checkpoint(path, int(manifest["step"]), tensors, state, (path / HISTORY_FILE).read_text())
