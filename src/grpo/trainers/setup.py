"""Building what a run needs, outside the step: device, seeds, task, models and run services."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from grpo import dist
from grpo.config import RunConfig
from grpo.config.schema import TaskConfig
from grpo.errors import UserError
from grpo.models.load import (
    add_lora,
    autocast_context,
    autocast_dtype,
    frozen_copy,
    load_policy,
    load_tokenizer,
    resolve_device,
    resolve_model_path,
)
from grpo.rewards.combine import WeightedReward, resolve_reward
from grpo.run.metrics import JsonlRecords, JsonlSink, MetricSink, NullSink
from grpo.run.progress import NullProgress, RichProgress
from grpo.run.run_dir import METRICS_FILE, SAMPLES_FILE, create_run_dir
from grpo.run.sinks import FanOutSink, TensorBoardSink, WandbSink
from grpo.tasks.api import Task
from grpo.tasks.registry import TaskSetup, build_task_setup
from grpo.trainers.loop import LoopServices

TENSORBOARD_DIR = "tensorboard"


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (per rank, so ranks draw different samples)."""
    seed = seed + dist.rank()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_task(config: TaskConfig, tokenizer: PreTrainedTokenizerBase | None = None) -> Task:
    """The configured task's examples (see `grpo.tasks.registry` for rewards and accuracy checks)."""
    return build_task_setup(config, tokenizer).task


def build_rewards(config: RunConfig, setup: TaskSetup) -> list[WeightedReward]:
    """The configured reward functions with their weights, or the task's defaults when none are set."""
    if not config.rewards:
        return setup.rewards
    rewards = []
    for index, spec in enumerate(config.rewards):
        fn = resolve_reward(spec.function, key=f"rewards[{index}].function")
        rewards.append(WeightedReward(spec.name or spec.function.rsplit(":", 1)[-1], fn, spec.weight))
    names = [reward.name for reward in rewards]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise UserError(f"rewards: two functions are named {duplicates[0]!r}; give one of them a distinct name")
    return rewards


@dataclass
class Models:
    """The loaded networks of a run, the device they are on and the autocast their forwards run under."""

    policy: PreTrainedModel
    reference: PreTrainedModel | None
    tokenizer: PreTrainedTokenizerBase
    device: torch.device
    adapter_reference: bool = False  # LoRA: the reference is the policy with its adapter disabled
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    autocast_dtype: torch.dtype | None = None


def build_models(config: RunConfig, with_reference: bool | None = None) -> Models:
    """Policy and tokenizer from `model.path`; the reference when `with_reference` (default: beta > 0);
    with LoRA the reference is the base model under the adapter, so no copy is made.

    `grpo.trainers.checks.preflight` has already checked the model's limits against the config.
    """
    model = config.model
    device = resolve_device(model.device)
    dtype = autocast_dtype(model.autocast, device)
    autocast = autocast_context(dtype, device)
    path = resolve_model_path(model.path)
    tokenizer = load_tokenizer(path)
    policy = load_policy(path, model.dtype, device, model.gradient_checkpointing)
    needs_reference = config.algo.beta > 0 if with_reference is None else with_reference
    if model.lora is not None:
        peft_policy = add_lora(policy, model.lora, model.gradient_checkpointing)
        return Models(peft_policy, None, tokenizer, device, needs_reference, autocast, dtype)
    reference = frozen_copy(policy) if needs_reference else None
    return Models(policy, reference, tokenizer, device, False, autocast, dtype)


def open_services(
    config: RunConfig, total_steps: int, console: Console, run_dir: Path | None = None
) -> LoopServices:
    """Run directory, metrics, samples and progress on the main rank; silent stand-ins elsewhere
    (which still learn the run directory's path, for checkpoints).

    `run_dir` is the existing directory of a resumed run; without it the main rank creates one.
    """
    if run_dir is None:
        run_dir = dist.broadcast_from_main(create_run_dir(config) if dist.is_main() else None)
    if not dist.is_main():
        return LoopServices(NullSink(), None, NullProgress(), run_dir)
    progress = RichProgress(total_steps, console) if config.log.progress else NullProgress()
    return LoopServices(build_sink(config, run_dir), JsonlRecords(run_dir / SAMPLES_FILE), progress, run_dir)


def build_sink(config: RunConfig, run_dir: Path) -> MetricSink:
    """metrics.jsonl always; TensorBoard event files and W&B as `log.tensorboard` / `log.wandb` say."""
    log = config.log
    sinks: list[MetricSink] = [JsonlSink(run_dir / METRICS_FILE)]
    if log.tensorboard:
        sinks.append(TensorBoardSink(run_dir / TENSORBOARD_DIR))
    if log.wandb:
        sinks.append(WandbSink(log.wandb_project, run_dir.name, run_dir, log.wandb_mode,
                               config.model_dump(mode="json")))
    return FanOutSink(sinks)


def rollout_generator(seed: int, device: torch.device) -> torch.Generator:
    """The sampler's own RNG, seeded per rank, on the model's device."""
    generator = torch.Generator(device=device)
    generator.manual_seed(seed * 7919 + dist.rank())
    return generator
