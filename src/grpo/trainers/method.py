"""What a training method is: a builder that turns models, reward and prompts into a step function.

GRPO's builder lives here with the pieces PPO and DPO reuse (the shared context, sample records,
the reference refresh); the table of methods by name is `grpo.trainers.methods.METHODS`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from transformers import PreTrainedTokenizerBase

from grpo.config import RunConfig
from grpo.rewards.combine import WeightedReward, single
from grpo.rewards.guard import RewardGuard
from grpo.rollout import RolloutBatch
from grpo.trainers.data import PromptStream
from grpo.trainers.grpo import GRPOContext, Scored, grpo_step
from grpo.trainers.loop import StepFn
from grpo.trainers.optim import build_optimizer
from grpo.trainers.setup import Models, rollout_generator, wrap_for_training

RewardFn = Callable[..., list[float | None]]
Rewards = list[WeightedReward] | RewardFn  # the run's weighted reward list, or one plain function
SAMPLES_PER_STEP = 8


@dataclass(frozen=True)
class MethodRun:
    """A built method: its step function, how many full-size networks it keeps in memory, and the
    state a checkpoint must hold (the shared context, plus modules such as PPO's critic)."""

    step: StepFn
    models_held: int
    ctx: GRPOContext
    extra_modules: dict[str, torch.nn.Module] = field(default_factory=dict)


@dataclass(frozen=True)
class Method:
    """How to build a method, and whether it needs the frozen reference policy under `config`."""

    build: Callable[[RunConfig, Models, Rewards, PromptStream, RewardGuard], MethodRun]
    needs_reference: Callable[[RunConfig], bool]


def count_models(*models: torch.nn.Module | None) -> int:
    """Number of distinct full networks among `models` (None and repeats are not counted)."""
    return len({id(model) for model in models if model is not None})


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


def prompt_texts(tokenizer: PreTrainedTokenizerBase, batch: RolloutBatch) -> list[str]:
    """The B prompts of a batch as text, chat markers kept, padding and a leading BOS dropped.

    Decoded from the batch itself because dynamic sampling may train on other prompts than it was given.
    """
    prompts = []
    for row in batch.prompt_ids[:: batch.group_size].tolist():
        ids = [token for token in row if token != tokenizer.pad_token_id]
        if ids and ids[0] == tokenizer.bos_token_id:
            ids = ids[1:]
        prompts.append(tokenizer.decode(ids))
    return prompts


def grpo_context(
    config: RunConfig, models: Models, rewards: Rewards, stream: PromptStream, guard: RewardGuard | None = None
) -> GRPOContext:
    """The GRPO step's context; PPO and DPO reuse its sampling and scoring phases."""
    return GRPOContext(
        policy=models.policy,
        train_model=wrap_for_training(models.policy, models.device),
        reference=models.reference,
        tokenizer=models.tokenizer,
        optim=build_optimizer(models.policy.parameters(), config.optim),
        config=config,
        generator=rollout_generator(config.seed, models.device),
        rewards=rewards if isinstance(rewards, list) else single(rewards),
        adapter_reference=models.adapter_reference,
        autocast=models.autocast,
        reward_guard=guard if guard is not None else RewardGuard(),
        more_prompts=lambda: stream.next_batch(config.rollout.prompts_per_step),
    )


def build_grpo(
    config: RunConfig, models: Models, rewards: Rewards, stream: PromptStream, guard: RewardGuard | None = None
) -> MethodRun:
    """GRPO (and every variant chosen by `algo.*` keys)."""
    ctx = grpo_context(config, models, rewards, stream, guard)

    def step(examples: list) -> tuple[dict, list]:
        stats, scored = grpo_step(ctx, examples)
        return stats, sample_records(scored, prompt_texts(ctx.tokenizer, scored.batch))

    return MethodRun(step, count_models(models.policy, models.reference), ctx)


def with_reference_refresh(
    step: StepFn, policy: torch.nn.Module, reference: torch.nn.Module | None, every: int
) -> StepFn:
    """Copy the policy's weights into the reference after every `every`-th step (0: never).

    Keeps the KL anchor near the current policy in long runs, as in Kimi k1.5 (Team 2025, Sec. 2.3.2)
    and TRL's `sync_ref_model`; the step where it happens logs `reference_refreshed` = 1.
    """
    if reference is None or every == 0:
        return step
    counter = itertools.count(1)

    def refreshing(examples: list) -> tuple[dict, list]:
        stats, samples = step(examples)
        refreshed = next(counter) % every == 0
        if refreshed:
            reference.load_state_dict(policy.state_dict())
        return {**stats, "reference_refreshed": torch.tensor(float(refreshed))}, samples

    return refreshing
