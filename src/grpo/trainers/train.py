"""`grpo train`: build everything, run the chosen method through the shared loop, report accuracy."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

from rich.console import Console

from grpo import dist
from grpo.config import RunConfig
from grpo.config.schema import GuardsConfig
from grpo.models.load import load_tokenizer, resolve_model_path
from grpo.models.value_head import build_value_model, critic_owns_backbone
from grpo.rewards.combine import single
from grpo.rewards.guard import RewardGuard
from grpo.rollout.sampler import sampling_params
from grpo.tasks.api import Task, held_out_slices
from grpo.trainers.checks import StepWatch, checked_task_setup, preflight
from grpo.trainers.data import PromptStream, rank_share
from grpo.trainers.evaluate import HeldOutEvaluator, PassAtK
from grpo.trainers.explain_log import with_explain_log
from grpo.trainers.loop import TrainResult, run_loop
from grpo.trainers.methods import METHODS, count_models, with_reference_refresh
from grpo.trainers.parallel import gathered
from grpo.trainers.resume import Checkpointer, find_checkpoint, rewind_run_files
from grpo.trainers.setup import Models, build_models, build_rewards, open_services, rollout_generator, seed_everything
from grpo.trainers.state import TrainState, build_state


def reward_guard(guards: GuardsConfig) -> RewardGuard:
    """The reward isolation the config asks for (fallback score, strictness, time limit, valid range)."""
    return RewardGuard(guards.reward_fallback, guards.reward_strict, guards.reward_timeout,
                       guards.reward_min, guards.reward_max, guards.reward_processes, guards.reward_memory_mb)


@contextlib.contextmanager
def evaluation_context(models: Models) -> Iterator[None]:
    """Where held-out evaluation runs: the run's autocast, with the full weights gathered under FSDP2."""
    with models.autocast(), gathered(models.policy):
        yield


def sampled_pass(config: RunConfig) -> PassAtK | None:
    """The sampled pass@1 / pass@k evaluation `log.eval_pass_samples` asks for, at the rollout's sampling
    settings (None when it is 0)."""
    log = config.log
    if not log.eval_pass_samples:
        return None
    return PassAtK(log.eval_pass_samples, log.eval_pass_k, sampling_params(config), config.seed)


def train_state(config: RunConfig, models: Models, rewards: list, guard: RewardGuard) -> TrainState:
    """The run's TrainState: the method's critic (if any) built on the policy, everything distributed."""
    layout = METHODS[config.algorithm].critic(config)
    critic = build_value_model(models.policy, layout) if layout is not None else None
    return build_state(config, models.policy, models.reference, models.tokenizer,
                       rollout_generator(config.seed, models.device), rewards, guard, critic,
                       models.adapter_reference, models.autocast, models.autocast_dtype)


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
    setup = checked_task_setup(config, load_tokenizer(resolve_model_path(config.model.path)))
    task = task if task is not None else setup.task
    rewards = single(reward_fn) if reward_fn is not None else build_rewards(config, setup)
    check = reward_fn if reward_fn is not None else setup.check
    test_examples = preflight(config, task)
    run_dir, checkpoint = find_checkpoint(resume) if resume is not None else (None, None)
    models = build_models(config, with_reference=method.needs_reference(config))
    with dist.process_group(models.device):
        rank_share(config.rollout.prompts_per_step)
        seed_everything(config.seed)
        stream = PromptStream(task, config.seed)
        state = train_state(config, models, rewards, reward_guard(config.guards))
        try:
            state.more_prompts = lambda: stream.next_batch(config.rollout.prompts_per_step)
            step = with_reference_refresh(method.build(state), state, config.algo.ref_refresh_every)

            evaluate = HeldOutEvaluator(models.policy, models.tokenizer, test_examples,
                                        held_out_slices(task, config.task.slice_size), config.rollout.max_new_tokens,
                                        check, config.log.eval_slice_size, lambda: evaluation_context(models),
                                        guard=state.guard, pass_rates=sampled_pass(config))
            if checkpoint is not None and dist.is_main():
                rewind_run_files(run_dir, checkpoint)
            services = open_services(config, config.optim.steps, console, run_dir)
            services.checkpointer = Checkpointer(services.run_dir, state, stream, config.checkpoint.keep)
            resumed = None
            if checkpoint is not None:
                resumed = services.checkpointer.restore(checkpoint)
                state.check_logprobs = checkpoint.step == 0  # only the run's first step compares them
            watch = StepWatch(config.guards, config.rollout.max_new_tokens)
            next_batch = lambda: stream.next_batch(config.rollout.prompts_per_step)
            first_step = resumed["step"] + 1 if resumed is not None else 1
            step = with_explain_log(step, state, services.run_dir, config.log.samples_every, first_step)
            result = run_loop(config, step, next_batch, models.policy, models.tokenizer, test_examples, services, watch,
                              resumed, evaluate)
            return replace(result, models_held=models_held(models, state))
        finally:
            if state.sampler is not None:
                state.sampler.close()


def models_held(models: Models, state: TrainState) -> int:
    """How many model copies the run kept in memory (policy, reference, a critic with its own backbone)."""
    critic = state.critic
    own_backbone = critic is not None and critic_owns_backbone(critic, state.policy)
    return count_models(models.policy, models.reference, critic.lm if own_backbone else None)
