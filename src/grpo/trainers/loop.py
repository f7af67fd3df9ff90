"""The outer training loop every method shares: steps, evaluation cadence, metrics, final checkpoint.

The loop receives a step function and the services it reports to (composition, not inheritance), so
GRPO, PPO and DPO steps plug into the same cadence, logging and checkpointing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from grpo import dist
from grpo.config import RunConfig
from grpo.models.load import exportable, has_adapter
from grpo.run.checkpoint import save_model_atomic
from grpo.run.metrics import JsonlRecords, MetricSink
from grpo.run.progress import ProgressBar
from grpo.run.report import write_report
from grpo.run.run_dir import ADAPTER_CHECKPOINT, FINAL_CHECKPOINT
from grpo.tasks.api import Example
from grpo.trainers.evaluate import greedy_accuracy

StepFn = Callable[[list[Example]], tuple[dict[str, torch.Tensor], list[dict[str, object]]]]


@dataclass
class LoopServices:
    """Where the loop reports: metric sink, sample log, progress bar and run directory (main rank)."""

    sink: MetricSink
    samples: JsonlRecords | None
    progress: ProgressBar
    run_dir: Path | None


@dataclass(frozen=True)
class TrainResult:
    base_accuracy: float
    final_accuracy: float
    steps: int
    train_seconds: float
    checkpoint: Path | None


def reduce_stats(stats: dict[str, torch.Tensor]) -> dict[str, float]:
    """Average every statistic across ranks in one collective, then convert to floats once."""
    if not stats:
        return {}
    keys = sorted(stats)
    stacked = torch.stack([torch.as_tensor(stats[key], dtype=torch.float32).reshape(()).cpu() for key in keys])
    return dict(zip(keys, dist.all_reduce_mean(stacked).tolist()))


def run_loop(
    config: RunConfig,
    step_fn: StepFn,
    next_batch: Callable[[], list[Example]],
    policy: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    test_examples: list[Example],
    services: LoopServices,
    evaluate: Callable[[], float] | None = None,
) -> TrainResult:
    """Run `config.optim.steps` steps with evaluation at the start, every `eval_every` and the end.

    `evaluate` returns held-out accuracy; by default, greedy exact-answer accuracy on `test_examples`.
    """
    if evaluate is None:
        evaluate = lambda: greedy_accuracy(policy, tokenizer, test_examples, config.rollout.max_new_tokens).accuracy
    base = evaluate()
    services.sink.log(0, {"eval_accuracy": base})
    services.progress.update(0, {"eval_accuracy": base})
    accuracy, started, steps = base, time.perf_counter(), config.optim.steps
    for step in range(1, steps + 1):
        tick = time.perf_counter()
        stats, samples = step_fn(next_batch())
        values = reduce_stats(stats)
        values["step_time"] = time.perf_counter() - tick
        if step == steps or (config.log.eval_every and step % config.log.eval_every == 0):
            accuracy = values["eval_accuracy"] = evaluate()
        services.sink.log(step, values)
        services.progress.update(step, values)
        if services.samples is not None and (step % config.log.samples_every == 0 or step == 1):
            services.samples.write([{"step": step, **sample} for sample in samples])
            services.sink.log_samples(step, samples)
    train_seconds = time.perf_counter() - started
    services.progress.close()
    services.sink.close()
    checkpoint = None
    if services.run_dir is not None:
        checkpoint = save_final(policy, tokenizer, services.run_dir)
        if config.log.report:
            write_report(services.run_dir)
    return TrainResult(base, accuracy, steps, train_seconds, checkpoint)


def save_final(policy: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, run_dir: Path) -> Path:
    """The final model as plain transformers weights (LoRA merged in); with LoRA, also the adapter alone."""
    checkpoint = save_model_atomic(exportable(policy), tokenizer, run_dir / FINAL_CHECKPOINT)
    if has_adapter(policy):
        save_model_atomic(policy, tokenizer, run_dir / ADAPTER_CHECKPOINT)
    return checkpoint
