"""The training state a checkpoint holds, and putting it back: exact resume.

Everything the next step depends on is captured: policy and reference weights, optimiser and
schedule state, every RNG (Python, numpy, torch, the sampler's generator), the prompt stream's
position, the loop's counters and the metric history. With the same config and the same number of
torch threads, a resumed CPU run reproduces the uninterrupted run bit for bit.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.distributed.checkpoint.state_dict import (
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from grpo import dist
from grpo.run.checkpoint import (
    Checkpoint,
    CheckpointError,
    list_checkpoints,
    read_checkpoint,
    remove_staging_leftovers,
    write_checkpoint,
)
from grpo.run.run_dir import METRICS_FILE, SAMPLES_FILE
from grpo.trainers.data import PromptStream
from grpo.trainers.parallel import FULL_STATE
from grpo.trainers.state import TrainState

CHECKPOINTS_DIR = "checkpoints"
FULL = FULL_STATE


def resume_command(path: Path) -> str:
    return f"grpo train --resume {path}"


def model_tensors(model: torch.nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The full state dict (gathered from every rank under FSDP2) without tied duplicates (safetensors
    refuses shared storage), and name -> source of each duplicate."""
    tensors: dict[str, torch.Tensor] = {}
    tied: dict[str, str] = {}
    owners: dict[tuple[int, int, tuple[int, ...]], str] = {}
    for name, tensor in get_model_state_dict(model, options=FULL).items():
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        if key in owners:
            tied[name] = owners[key]
        else:
            owners[key] = name
            tensors[name] = tensor
    return tensors, tied


def load_model_tensors(model: torch.nn.Module, tensors: dict[str, torch.Tensor], tied: dict[str, str]) -> None:
    full = dict(tensors)
    full.update({name: tensors[source] for name, source in tied.items()})
    set_model_state_dict(model, full, options=FULL)


def optimizer_tensors(state: TrainState) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The optimiser's full state (gathered from every rank under FSDP2) as flat tensors
    ("<parameter name>|<moment>") plus its JSON param groups, keyed by parameter names."""
    full = get_optimizer_state_dict(state.trainable, state.optim.optimizer, options=FULL)  # {} off the main rank
    entries = full.get("state", {})
    tensors = {f"{name}|{key}": value for name, entry in entries.items() for key, value in entry.items()}
    return tensors, {"param_groups": full.get("param_groups", [])}


def load_optimizer_tensors(state: TrainState, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    entries: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        name, moment = key.rsplit("|", 1)
        entries.setdefault(name, {})[moment] = value
    set_optimizer_state_dict(state.trainable, state.optim.optimizer,
                             {"state": entries, "param_groups": meta["param_groups"]}, options=FULL)


def capture_rng(generator: torch.Generator) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Torch states as tensors; Python's and numpy's Mersenne Twister states as JSON lists."""
    tensors = {"torch": torch.get_rng_state(), "sampler": generator.get_state()}
    if torch.cuda.is_available():
        tensors.update({f"cuda{i}": state for i, state in enumerate(torch.cuda.get_rng_state_all())})
    version, words, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    meta = {"python": [version, list(words), gauss], "numpy": [name, keys.tolist(), pos, has_gauss, cached]}
    return tensors, meta


def restore_rng(generator: torch.Generator, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["torch"])
    generator.set_state(tensors["sampler"])
    cuda = [tensors[key] for key in sorted(tensors) if key.startswith("cuda")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    version, words, gauss = meta["python"]
    random.setstate((version, tuple(words), gauss))
    name, keys, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


def _rows_up_to(path: Path, step: int) -> str:
    """The lines of a JSONL file whose `step` is <= `step`; a torn last line (a kill mid-write) is dropped."""
    if not path.is_file():
        return ""
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if row.get("step", 0) <= step:
            kept.append(line + "\n")
    return "".join(kept)


@dataclass
class Checkpointer:
    """Saves and restores the full training state under `run_dir/checkpoints`.

    Every rank calls `save` and `restore` (weights and optimiser state are gathered from, or
    scattered to, every rank; each rank's RNG states are kept apart); only the main rank writes.
    """

    run_dir: Path
    state: TrainState
    stream: PromptStream
    keep: int

    @property
    def root(self) -> Path:
        return self.run_dir / CHECKPOINTS_DIR

    def _modules(self) -> dict[str, torch.nn.Module]:
        modules = {"policy": self.state.policy}
        if self.state.reference is not None:
            modules["reference"] = self.state.reference
        if self.state.critic is not None:
            modules["module.critic"] = self.state.critic
        return modules

    def save(self, step: int, loop_state: dict[str, Any]) -> Path | None:
        """Write the state after `step` (metrics up to `step` included); keep the newest `keep`.
        Returns the checkpoint's path on the main rank, None elsewhere."""
        tensors, tied = {}, {}
        for name, module in self._modules().items():
            tensors[name], tied[name] = model_tensors(module)
        tensors["optimizer"], optim_meta = optimizer_tensors(self.state)
        ranks = dist.all_gather_objects(capture_rng(self.state.generator))
        if not dist.is_main():
            return None
        rng_meta = []
        for rank, (rng_tensors, meta) in enumerate(ranks):
            tensors[f"rng.{rank}"] = rng_tensors
            rng_meta.append(meta)
        version, words, gauss = self.stream.rng.getstate()
        state = {"step": step, "tied": tied, "optimizer": optim_meta, "world_size": dist.world_size(),
                 "scheduler": self.state.optim.scheduler.state_dict(), "rng": rng_meta,
                 "stream": [version, list(words), gauss], "loop": loop_state}
        history = _rows_up_to(self.run_dir / METRICS_FILE, step)
        return write_checkpoint(self.root, step, tensors, state, history, self.keep)

    def restore(self, checkpoint: Checkpoint) -> dict[str, Any]:
        """Put every piece of `checkpoint` back in place on every rank; returns the loop's saved state."""
        tensors, state = checkpoint.tensors, checkpoint.state
        saved_world = state.get("world_size", 1)
        if saved_world != dist.world_size():
            raise CheckpointError(f"--resume: {checkpoint.path} was written by {saved_world} process(es); resume it "
                                  f"with the same number (torchrun --nproc-per-node {saved_world}), not "
                                  f"{dist.world_size()}, so that every rank's sampler continues exactly")
        for name, module in self._modules().items():
            if name in tensors:
                load_model_tensors(module, tensors[name], state["tied"][name])
        load_optimizer_tensors(self.state, tensors["optimizer"], state["optimizer"])
        self.state.optim.scheduler.load_state_dict(state["scheduler"])
        restore_rng(self.state.generator, tensors[f"rng.{dist.rank()}"], state["rng"][dist.rank()])
        version, words, gauss = state["stream"]
        self.stream.rng.setstate((version, tuple(words), gauss))
        return state["loop"]

    def rollback(self, before_step: int) -> Path | None:
        """Restore the newest checkpoint older than `before_step`; None when there is none."""
        good = [path for step, path in list_checkpoints(self.root) if step < before_step]
        if not good:
            return None
        self.restore(read_checkpoint(good[-1], resume_command))
        return good[-1]


def rewind_run_files(run_dir: Path, checkpoint: Checkpoint) -> None:
    """Make the run's metrics and samples files end at the checkpoint's step (no repeated rows).

    Checkpoints newer than the one resumed from (a corrupt one, or a diverged stretch) belong to an
    abandoned history: they are renamed `abandoned-step-...`, kept for inspection but never resumed.
    """
    (run_dir / METRICS_FILE).write_text(checkpoint.history, encoding="utf-8")
    samples = run_dir / SAMPLES_FILE
    if samples.is_file():
        samples.write_text(_rows_up_to(samples, checkpoint.step), encoding="utf-8")
    root = run_dir / CHECKPOINTS_DIR
    remove_staging_leftovers(root)
    for step, path in list_checkpoints(root):
        if step > checkpoint.step:
            os.replace(path, path.with_name(f"abandoned-{path.name}"))


def find_checkpoint(target: Path) -> tuple[Path, Checkpoint]:
    """(run directory, verified newest checkpoint) for a run directory or a checkpoint directory."""
    if (target / "manifest.json").is_file() or target.parent.name == CHECKPOINTS_DIR:
        run_dir, path = target.parent.parent, target
    else:
        run_dir = target
        if not target.is_dir():
            raise CheckpointError(f"--resume: {target} is not a run directory")
        found = list_checkpoints(target / CHECKPOINTS_DIR)
        if not found:
            raise CheckpointError(f"--resume: run {target} has no complete checkpoint to resume from")
        path = found[-1][1]
    return run_dir, read_checkpoint(path, resume_command)


def latest_run(output_dir: Path) -> Path:
    """The run directory under `output_dir` whose newest checkpoint was written last (`--resume latest`)."""
    candidates = []
    if output_dir.is_dir():
        for run in output_dir.iterdir():
            found = list_checkpoints(run / CHECKPOINTS_DIR)
            if found:
                candidates.append(((found[-1][1] / "manifest.json").stat().st_mtime, run))
    if not candidates:
        raise CheckpointError(f"--resume latest: no run under {output_dir} has a checkpoint (set log.output_dir)")
    return max(candidates)[1]
