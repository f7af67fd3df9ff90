"""`grpo train`: build everything, run the GRPO loop, report base and final accuracy."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from grpo import dist
from grpo.config import RunConfig
from grpo.config.schema import GuardsConfig
from grpo.rewards import exact_answer
from grpo.rewards.guard import RewardGuard
from grpo.tasks.api import Task
from grpo.trainers.checks import StepWatch, preflight
from grpo.trainers.data import PromptStream
from grpo.trainers.grpo import GRPOContext, Scored, grpo_step
from grpo.trainers.loop import TrainResult, run_loop
from grpo.trainers.optim import build_optimizer
from grpo.trainers.resume import Checkpointer, find_checkpoint, rewind_run_files
from grpo.trainers.setup import (
    build_models,
    build_task,
    open_services,
    rollout_generator,
    seed_everything,
    wrap_for_training,
)

SAMPLES_PER_STEP = 8


def sample_records(scored: Scored, prompts: list[str]) -> list[dict[str, object]]:
    """A few completions of the step with their rewards and advantages, for samples.jsonl."""
    G = scored.batch.group_size
    return [
        {
            "prompt": prompts[i // G],
            "completion": scored.texts[i],
            "reward": float(scored.rewards[i]),
            "advantage": float(scored.advantages[i]),
        }
        for i in range(min(SAMPLES_PER_STEP, len(scored.texts)))
    ]


def reward_guard(guards: GuardsConfig) -> RewardGuard:
    """The reward isolation the config asks for (fallback score, strictness, time limit, valid range)."""
    return RewardGuard(guards.reward_fallback, guards.reward_strict, guards.reward_timeout,
                       guards.reward_min, guards.reward_max)


def train(
    config: RunConfig,
    task: Task | None = None,
    reward_fn: Callable[..., list[float | None]] = exact_answer,
    console: Console | None = None,
    resume: Path | None = None,
) -> TrainResult:
    """Train with GRPO as configured; the run directory appears only after the model has loaded.

    `task` replaces the configured built-in task and `reward_fn` the exact-answer reward, for users
    who bring their own prompts and checks from Python (see the README). `resume` (a run or
    checkpoint directory) continues that run from its newest verified checkpoint.
    """
    console = console or Console()
    task = task if task is not None else build_task(config.task)
    test_examples = preflight(config, task)
    run_dir, checkpoint = find_checkpoint(resume) if resume is not None else (None, None)
    models = build_models(config)
    dist.init_from_env(models.device)
    seed_everything(config.seed)
    ctx = GRPOContext(
        policy=models.policy,
        train_model=wrap_for_training(models.policy, models.device),
        reference=models.reference,
        tokenizer=models.tokenizer,
        optim=build_optimizer(models.policy.parameters(), config.optim),
        config=config,
        generator=rollout_generator(config.seed, models.device),
        reward_fn=reward_fn,
        reward_guard=reward_guard(config.guards),
    )
    stream = PromptStream(task, config.seed)

    def step(examples: list) -> tuple[dict, list]:
        stats, scored = grpo_step(ctx, examples)
        return stats, sample_records(scored, [example.prompt for example in examples])

    if checkpoint is not None and dist.is_main():
        rewind_run_files(run_dir, checkpoint)
    services = open_services(config, config.optim.steps, console, run_dir)
    if services.run_dir is not None:
        services.checkpointer = Checkpointer(services.run_dir, ctx, stream, config.checkpoint.keep)
    resumed = None
    if checkpoint is not None:
        resumed = Checkpointer(run_dir, ctx, stream, config.checkpoint.keep).restore(checkpoint)
        ctx.check_logprobs = checkpoint.step == 0  # only the run's first step compares them
    watch = StepWatch(config.guards, config.rollout.max_new_tokens)
    next_batch = lambda: stream.next_batch(config.rollout.prompts_per_step)
    return run_loop(config, step, next_batch, models.policy, models.tokenizer, test_examples, services, watch, resumed,
                    reward_fn=reward_fn)
