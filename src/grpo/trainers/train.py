"""`grpo train`: build everything, run the GRPO loop, report base and final accuracy."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console

from grpo import dist
from grpo.config import RunConfig
from grpo.models.load import load_tokenizer, resolve_model_path
from grpo.rewards.combine import single
from grpo.tasks.api import Task
from grpo.tasks.registry import build_task_setup
from grpo.trainers.data import PromptStream
from grpo.trainers.evaluate import greedy_accuracy
from grpo.trainers.grpo import GRPOContext, Scored, grpo_step
from grpo.trainers.loop import TrainResult, run_loop
from grpo.trainers.optim import build_optimizer
from grpo.trainers.setup import (
    build_models,
    build_rewards,
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
            **{name: float(values[i]) for name, values in scored.components.items() if len(scored.components) > 1},
        }
        for i in range(min(SAMPLES_PER_STEP, len(scored.texts)))
    ]


def train(
    config: RunConfig,
    task: Task | None = None,
    reward_fn: Callable[..., list[float | None]] | None = None,
    console: Console | None = None,
) -> TrainResult:
    """Train with GRPO as configured; the run directory appears only after the model has loaded.

    `task` replaces the configured task and `reward_fn` the configured rewards (it then also decides
    accuracy), for users who bring their own prompts and checks from Python (see the README).
    The data is read and checked before the model loads (only the tokenizer is needed for it).
    """
    console = console or Console()
    setup = build_task_setup(config.task, load_tokenizer(resolve_model_path(config.model.path)))
    task = task if task is not None else setup.task
    rewards = single(reward_fn) if reward_fn is not None else build_rewards(config, setup)
    check = reward_fn if reward_fn is not None else setup.check
    test_examples = task.test_examples()
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
        rewards=rewards,
        adapter_reference=models.adapter_reference,
        autocast=models.autocast,
    )
    stream = PromptStream(task, config.seed)

    def step(examples: list) -> tuple[dict, list]:
        stats, scored = grpo_step(ctx, examples)
        return stats, sample_records(scored, [example.prompt for example in examples])

    def evaluate() -> float:
        with models.autocast():
            return greedy_accuracy(models.policy, models.tokenizer, test_examples, config.rollout.max_new_tokens,
                                   check=check).accuracy

    services = open_services(config, config.optim.steps, console)
    return run_loop(
        config,
        step,
        lambda: stream.next_batch(config.rollout.prompts_per_step),
        models.policy,
        models.tokenizer,
        test_examples,
        services,
        evaluate,
    )
