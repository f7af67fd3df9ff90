"""Building what a run needs, outside the step: device, seeds, task, models and run services."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from grpo import dist
from grpo.config import RunConfig
from grpo.config.schema import TaskConfig
from grpo.models.load import frozen_copy, load_policy, load_tokenizer, resolve_device, resolve_model_path
from grpo.run.metrics import JsonlRecords, JsonlSink, NullSink
from grpo.run.progress import NullProgress, RichProgress
from grpo.run.run_dir import METRICS_FILE, SAMPLES_FILE, create_run_dir
from grpo.tasks.arithmetic import ArithmeticTask
from grpo.trainers.loop import LoopServices


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (per rank, so ranks draw different samples)."""
    seed = seed + dist.rank()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_task(config: TaskConfig) -> ArithmeticTask:
    return ArithmeticTask(
        min_ops=config.min_ops,
        max_ops=config.max_ops,
        max_operand=config.max_operand,
        paren_prob=config.paren_prob,
        precedence_only=config.precedence_only,
        test_size=config.test_size,
    )


@dataclass
class Models:
    policy: PreTrainedModel
    reference: PreTrainedModel | None
    tokenizer: PreTrainedTokenizerBase
    device: torch.device


def build_models(config: RunConfig, with_reference: bool | None = None) -> Models:
    """Policy and tokenizer from `model.path`; the frozen reference when `with_reference` (default: beta > 0).

    `grpo.trainers.checks.preflight` has already checked the model's limits against the config.
    """
    device = resolve_device(config.model.device)
    path = resolve_model_path(config.model.path)
    tokenizer = load_tokenizer(path)
    policy = load_policy(path, config.model.dtype, device)
    with_reference = config.algo.beta > 0 if with_reference is None else with_reference
    reference = frozen_copy(policy) if with_reference else None
    return Models(policy, reference, tokenizer, device)


def wrap_for_training(policy: PreTrainedModel, device: torch.device) -> torch.nn.Module:
    """The module gradients flow through: DDP across ranks when several run, else the policy."""
    if dist.world_size() == 1:
        return policy
    device_ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(policy, device_ids=device_ids)


def open_services(
    config: RunConfig, total_steps: int, console: Console, run_dir: Path | None = None
) -> LoopServices:
    """Run directory, metrics, samples and progress on the main rank; silent stand-ins elsewhere.

    `run_dir` is the existing directory of a resumed run; without it a new one is created.
    """
    if not dist.is_main():
        return LoopServices(NullSink(), None, NullProgress(), None)
    run_dir = run_dir if run_dir is not None else create_run_dir(config)
    progress = RichProgress(total_steps, console) if config.log.progress else NullProgress()
    return LoopServices(JsonlSink(run_dir / METRICS_FILE), JsonlRecords(run_dir / SAMPLES_FILE), progress, run_dir)


def rollout_generator(seed: int, device: torch.device) -> torch.Generator:
    """The sampler's own RNG, seeded per rank, on the model's device."""
    generator = torch.Generator(device=device)
    generator.manual_seed(seed * 7919 + dist.rank())
    return generator


def describe_path(path: Path | None) -> str:
    return str(path) if path is not None else "(not written on this rank)"
