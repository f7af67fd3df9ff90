"""The outer training loop every method shares: steps, evaluation cadence, metrics, checkpoints, signals.

The loop receives a step function and the services it reports to (composition, not inheritance), so
GRPO, PPO and DPO steps plug into the same cadence, logging and checkpointing. It also owns the
run-level guards: per-step health checks (`StepWatch`), stopping after too many non-finite updates,
and SIGINT/SIGTERM, which finish the current step, save a checkpoint and return normally.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Protocol

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
from grpo.trainers.checks import Diverged, StepWatch
from grpo.trainers.evaluate import ACCURACY_KEY, HeldOutEvaluator
from grpo.trainers.parallel import is_sharded, unsharded_copy

StepFn = Callable[[list[Example]], tuple[dict[str, torch.Tensor], list[dict[str, object]]]]
Evaluate = Callable[[bool], dict[str, float]]  # full? -> {"eval_accuracy": ..., "eval/<slice>": ...}


class Checkpointing(Protocol):
    """Saves the full training state after a step, and puts an older one back."""

    def save(self, step: int, loop_state: dict[str, Any]) -> Path: ...

    def rollback(self, before_step: int) -> Path | None: ...


@dataclass
class LoopServices:
    """Where the loop reports: metric sink, sample log, progress bar, run directory and checkpoints
    (main rank; the others get silent stand-ins and None)."""

    sink: MetricSink
    samples: JsonlRecords | None
    progress: ProgressBar
    run_dir: Path | None
    checkpointer: Checkpointing | None = None


@dataclass(frozen=True)
class TrainResult:
    base_accuracy: float
    final_accuracy: float
    steps: int
    train_seconds: float
    checkpoint: Path | None
    stopped_by: str | None = None  # the signal's name when SIGINT/SIGTERM ended the run early
    models_held: int | None = None  # full networks the method kept in memory (policy, reference, critic)
    base_scores: dict[str, float] | None = None  # eval_accuracy and eval/<slice> of the base (full evaluation)
    final_scores: dict[str, float] | None = None  # the same at the last step


class StopOnSignal:
    """Turns SIGINT/SIGTERM into a request to stop after the current step; a second one stops at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested: str | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested is not None:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():  # only the main thread may install handlers
            self._previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def reduce_stats(stats: dict[str, torch.Tensor]) -> dict[str, float]:
    """Average every statistic across ranks in one collective, then convert to floats once."""
    if not stats:
        return {}
    keys = sorted(stats)
    stacked = torch.stack([torch.as_tensor(stats[key], dtype=torch.float32).reshape(()).cpu() for key in keys])
    return dict(zip(keys, dist.all_reduce_mean(stacked).tolist()))


def _diverged(services: LoopServices, first: int, step: int) -> Diverged:
    """The error that stops a run whose updates kept failing, after rolling back to a good checkpoint."""
    rolled = services.checkpointer.rollback(first) if services.checkpointer is not None else None
    where = (f"weights rolled back to {rolled}; once fixed, resume from it with: grpo train --resume {rolled}"
             if rolled is not None else "no checkpoint precedes them, so there is nothing to roll back to")
    return Diverged(f"steps {first}-{step}: {step - first + 1} updates in a row skipped because the loss or gradient "
                    f"norm was not finite; {where}; lower optim.lr or optim.max_grad_norm, or check the reward")


def _begin(evaluate: Evaluate, services: LoopServices, watch: StepWatch,
           resumed: dict[str, Any] | None) -> tuple[dict[str, float], float, int]:
    """(base scores, latest accuracy, first step to run): a new run evaluates the base policy and
    saves step 0 (so a run killed before its first periodic save still resumes); a resumed one reads
    them, and the watch's counters, from its checkpoint."""
    if resumed is not None:
        watch.load_state_dict(resumed["watch"])
        base = resumed.get("base_scores", {ACCURACY_KEY: resumed["base_accuracy"]})
        return base, resumed["accuracy"], resumed["step"] + 1
    base = evaluate(True)
    services.sink.log(0, base)
    services.progress.update(0, base)
    if services.checkpointer is not None:
        services.checkpointer.save(0, {"step": 0, "base_accuracy": base[ACCURACY_KEY], "base_scores": base,
                                       "accuracy": base[ACCURACY_KEY], "watch": watch.state_dict()})
    return base, base[ACCURACY_KEY], 1


def run_loop(
    config: RunConfig,
    step_fn: StepFn,
    next_batch: Callable[[], list[Example]],
    policy: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    test_examples: list[Example],
    services: LoopServices,
    watch: StepWatch | None = None,
    resumed: dict[str, Any] | None = None,
    evaluate: Evaluate | None = None,
) -> TrainResult:
    """Run steps up to `config.optim.steps`, from the start or after the step of `resumed` (a
    checkpoint's loop state), with evaluation at the start, every `eval_every` and the end.

    `evaluate(full)` returns held-out accuracy overall and per slice (full at the start and the end);
    by default, greedy exact-answer accuracy on `test_examples`.
    """
    if evaluate is None:
        evaluate = HeldOutEvaluator(policy, tokenizer, test_examples, [], config.rollout.max_new_tokens)
    watch = watch or StepWatch(config.guards, config.rollout.max_new_tokens)
    base_scores, accuracy, start = _begin(evaluate, services, watch, resumed)
    base, scores = base_scores[ACCURACY_KEY], base_scores
    started, steps, every = time.perf_counter(), config.optim.steps, config.checkpoint.every
    try:
        with StopOnSignal() as stop:
            for step in range(start, steps + 1):
                tick = time.perf_counter()
                stats, samples = step_fn(next_batch())
                stats["stop_requested"] = torch.tensor(float(stop.requested is not None))
                values = reduce_stats(stats)  # the flag rides along, so every rank stops after the same step
                stopping = values.pop("stop_requested") > 0
                values["step_time"] = time.perf_counter() - tick
                if step == steps or (config.log.eval_every and step % config.log.eval_every == 0):
                    scores = evaluate(step == steps)
                    values.update(scores)
                    accuracy = scores[ACCURACY_KEY]
                streak = watch.observe(step, values)
                services.sink.log(step, values)
                services.progress.update(step, values)
                if services.samples is not None and (step % config.log.samples_every == 0 or step == 1):
                    services.samples.write([{"step": step, **sample} for sample in samples])
                    services.sink.log_samples(step, samples)
                if streak is not None:
                    raise _diverged(services, streak, step)
                if services.checkpointer is not None and (stopping or step == steps or (every and step % every == 0)):
                    state = {"step": step, "base_accuracy": base, "base_scores": base_scores, "accuracy": accuracy,
                             "watch": watch.state_dict()}
                    saved = services.checkpointer.save(step, state)  # every rank: it gathers their RNG states
                if stopping and step < steps:
                    return TrainResult(base, accuracy, step, time.perf_counter() - started,
                                       saved if services.checkpointer is not None else None,
                                       stop.requested or "a signal to another rank")
    finally:
        services.progress.close()
        services.sink.close()
    train_seconds = time.perf_counter() - started
    checkpoint = None
    if services.run_dir is not None:
        checkpoint = save_final(policy, tokenizer, services.run_dir)
        if config.log.report and dist.is_main():
            write_report(services.run_dir)
    return TrainResult(base, accuracy, steps, train_seconds, checkpoint, base_scores=base_scores, final_scores=scores)


def save_final(policy: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, run_dir: Path) -> Path | None:
    """The final model as plain transformers weights (LoRA merged in), written by the main rank; with
    LoRA, also the adapter alone. Every rank calls it: sharded weights are gathered first."""
    model = unsharded_copy(policy) if is_sharded(policy) else policy
    if not dist.is_main():
        return None
    checkpoint = save_model_atomic(exportable(model), tokenizer, run_dir / FINAL_CHECKPOINT)
    if has_adapter(model):
        save_model_atomic(model, tokenizer, run_dir / ADAPTER_CHECKPOINT)
    return checkpoint
