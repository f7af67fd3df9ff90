"""`grpo train`: build everything, run the configured method's loop, report base and final accuracy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from rich.console import Console

from grpo import dist
from grpo.config import RunConfig
from grpo.rewards import exact_answer
from grpo.tasks.api import Task
from grpo.trainers.data import PromptStream
from grpo.trainers.loop import TrainResult, run_loop
from grpo.trainers.method import with_reference_refresh
from grpo.trainers.methods import METHODS
from grpo.trainers.setup import build_models, build_task, open_services, seed_everything


def train(
    config: RunConfig,
    task: Task | None = None,
    reward_fn: Callable[..., list[float | None]] = exact_answer,
    console: Console | None = None,
) -> TrainResult:
    """Train with `config.algorithm` (GRPO, PPO or DPO); the run directory appears only after the model loads.

    `task` replaces the configured built-in task and `reward_fn` the exact-answer reward, for users
    who bring their own prompts and checks from Python (see the README).
    """
    console = console or Console()
    method = METHODS[config.algorithm]
    task = task if task is not None else build_task(config.task)
    test_examples = task.test_examples()
    models = build_models(config, with_reference=method.needs_reference(config))
    dist.init_from_env(models.device)
    seed_everything(config.seed)
    stream = PromptStream(task, config.seed)
    run = method.build(config, models, reward_fn, stream)
    step = with_reference_refresh(run.step, models.policy, models.reference, config.algo.ref_refresh_every)
    services = open_services(config, config.optim.steps, console)
    result = run_loop(
        config,
        step,
        lambda: stream.next_batch(config.rollout.prompts_per_step),
        models.policy,
        models.tokenizer,
        test_examples,
        services,
    )
    return replace(result, models_held=run.models_held)
