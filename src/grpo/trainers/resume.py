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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

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
from grpo.trainers.grpo import GRPOContext

CHECKPOINTS_DIR = "checkpoints"


def resume_command(path: Path) -> str:
    return f"grpo train --resume {path}"


def model_tensors(model: torch.nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The state dict without tied duplicates (safetensors refuses shared storage), and name -> source."""
    tensors: dict[str, torch.Tensor] = {}
    tied: dict[str, str] = {}
    owners: dict[tuple[int, int, tuple[int, ...]], str] = {}
    for name, tensor in model.state_dict().items():
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
    model.load_state_dict(full, strict=True)


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Per-parameter optimiser state as flat tensors ("<index>.<name>") plus JSON param groups."""
    state = optimizer.state_dict()
    tensors = {f"{index}.{key}": value for index, entry in state["state"].items() for key, value in entry.items()}
    return tensors, {"param_groups": state["param_groups"]}


def load_optimizer_tensors(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                           meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


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
    """Saves and restores the full training state of a GRPO run under `run_dir/checkpoints`."""

    run_dir: Path
    ctx: GRPOContext
    stream: PromptStream
    keep: int
    extra_modules: dict[str, torch.nn.Module] = field(default_factory=dict)  # e.g. PPO's critic

    @property
    def root(self) -> Path:
        return self.run_dir / CHECKPOINTS_DIR

    def save(self, step: int, loop_state: dict[str, Any]) -> Path:
        """Write the state after `step` (metrics up to `step` included); keep the newest `keep`."""
        policy, policy_tied = model_tensors(self.ctx.policy)
        tensors = {"policy": policy}
        if self.ctx.reference is not None:
            tensors["reference"], ref_tied = model_tensors(self.ctx.reference)
        extra_tied = {}
        for name, module in self.extra_modules.items():
            tensors[f"module.{name}"], extra_tied[name] = model_tensors(module)
        optim, optim_meta = optimizer_tensors(self.ctx.optim.optimizer)
        tensors["optimizer"] = optim
        tensors["rng"], rng_meta = capture_rng(self.ctx.generator)
        version, words, gauss = self.stream.rng.getstate()
        state = {
            "step": step,
            "tied": {"policy": policy_tied, "reference": ref_tied if self.ctx.reference is not None else {},
                     "modules": extra_tied},
            "optimizer": optim_meta,
            "scheduler": self.ctx.optim.scheduler.state_dict(),
            "rng": rng_meta,
            "stream": [version, list(words), gauss],
            "loop": loop_state,
        }
        history = _rows_up_to(self.run_dir / METRICS_FILE, step)
        return write_checkpoint(self.root, step, tensors, state, history, self.keep)

    def restore(self, checkpoint: Checkpoint) -> dict[str, Any]:
        """Put every piece of `checkpoint` back in place; returns the loop's saved state."""
        tensors, state = checkpoint.tensors, checkpoint.state
        load_model_tensors(self.ctx.policy, tensors["policy"], state["tied"]["policy"])
        if self.ctx.reference is not None and "reference" in tensors:
            load_model_tensors(self.ctx.reference, tensors["reference"], state["tied"]["reference"])
        for name, module in self.extra_modules.items():
            load_model_tensors(module, tensors[f"module.{name}"], state["tied"]["modules"][name])
        load_optimizer_tensors(self.ctx.optim.optimizer, tensors["optimizer"], state["optimizer"])
        self.ctx.optim.scheduler.load_state_dict(state["scheduler"])
        restore_rng(self.ctx.generator, tensors["rng"], state["rng"])
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
