"""`grpo train`: build everything, run the chosen method through the shared loop, report accuracy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from rich.console import Console

from grpo import dist
from grpo.config import RunConfig
from grpo.config.schema import GuardsConfig
from grpo.models.load import load_tokenizer, resolve_model_path
from grpo.rewards.combine import single
from grpo.rewards.guard import RewardGuard
from grpo.tasks.api import Task, held_out_slices
from grpo.tasks.registry import build_task_setup
from grpo.trainers.checks import StepWatch, preflight
from grpo.trainers.data import PromptStream
from grpo.trainers.evaluate import HeldOutEvaluator
from grpo.trainers.explain_log import with_explain_log
from grpo.trainers.loop import TrainResult, run_loop
from grpo.trainers.method import with_reference_refresh
from grpo.trainers.methods import METHODS
from grpo.trainers.resume import Checkpointer, find_checkpoint, rewind_run_files
from grpo.trainers.setup import build_models, build_rewards, open_services, seed_everything


def reward_guard(guards: GuardsConfig) -> RewardGuard:
    """The reward isolation the config asks for (fallback score, strictness, time limit, valid range)."""
    return RewardGuard(guards.reward_fallback, guards.reward_strict, guards.reward_timeout,
                       guards.reward_min, guards.reward_max)


def train(
    config: RunConfig,
    task: Task | None = None,
    reward_fn: Callable[..., list[float | None]] | None = None,
    console: Console | None = None,
    resume: Path | None = None,
) -> TrainResult:
    """Train with `config.algorithm` (GRPO, PPO or DPO); the run directory appears only after the model loads.

    `task` replaces the configured task and `reward_fn` the configured rewards (it then also decides
    accuracy), for users who bring their own prompts and checks from Python (see the README). The data
    is read and checked before the model loads. `resume` (a run or checkpoint directory) continues that
    run from its newest verified checkpoint.
    """
    console = console or Console()
    method = METHODS[config.algorithm]
    setup = build_task_setup(config.task, load_tokenizer(resolve_model_path(config.model.path)))
    task = task if task is not None else setup.task
    rewards = single(reward_fn) if reward_fn is not None else build_rewards(config, setup)
    check = reward_fn if reward_fn is not None else setup.check
    test_examples = preflight(config, task)
    run_dir, checkpoint = find_checkpoint(resume) if resume is not None else (None, None)
    models = build_models(config, with_reference=method.needs_reference(config))
    dist.init_from_env(models.device)
    seed_everything(config.seed)
    stream = PromptStream(task, config.seed)
    run = method.build(config, models, rewards, stream, reward_guard(config.guards))
    step = with_reference_refresh(run.step, models.policy, models.reference, config.algo.ref_refresh_every)

    evaluate = HeldOutEvaluator(models.policy, models.tokenizer, test_examples,
                                held_out_slices(task, config.task.slice_size), config.rollout.max_new_tokens,
                                check, config.log.eval_slice_size, models.autocast)
    if checkpoint is not None and dist.is_main():
        rewind_run_files(run_dir, checkpoint)
    services = open_services(config, config.optim.steps, console, run_dir)
    checkpointer = lambda root: Checkpointer(root, run.ctx, stream, config.checkpoint.keep, run.extra_modules)
    if services.run_dir is not None:
        services.checkpointer = checkpointer(services.run_dir)
    resumed = None
    if checkpoint is not None:
        resumed = checkpointer(run_dir).restore(checkpoint)
        run.ctx.check_logprobs = checkpoint.step == 0  # only the run's first step compares them
    watch = StepWatch(config.guards, config.rollout.max_new_tokens)
    next_batch = lambda: stream.next_batch(config.rollout.prompts_per_step)
    first_step = resumed["step"] + 1 if resumed is not None else 1
    step = with_explain_log(step, run.ctx, services.run_dir, config.log.samples_every, first_step)
    result = run_loop(config, step, next_batch, models.policy, models.tokenizer, test_examples, services, watch,
                      resumed, evaluate)
    return replace(result, models_held=run.models_held)
