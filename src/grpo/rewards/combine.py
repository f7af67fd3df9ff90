"""Several reward functions per run: resolving them by name or import path, and their weighted sum.

A run's reward is r_i = sum_k w_k * r_ik over its reward functions k. A completion that any function
cannot score (None or non-finite) has no total reward and is excluded from the group baseline.
Each function's own scores are kept so that the metrics show them separately (reward/<name>).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from grpo.errors import UserError
from grpo.rewards.api import BUILTIN_REWARDS
from grpo.rewards.code import CodeReward
from grpo.rewards.countdown import countdown
from grpo.rewards.format import r1_format
from grpo.rewards.guard import RewardGuard, score
from grpo.rewards.math_answer import math_answer

RewardCallable = Callable[..., list[float | None]]
REWARDS: dict[str, RewardCallable] = {
    **BUILTIN_REWARDS,
    "math_answer": math_answer,
    "r1_format": r1_format,
    "countdown": countdown,
    "code": CodeReward(),
}


@dataclass(frozen=True)
class WeightedReward:
    """A reward function with its metric name and its weight in the total."""

    name: str
    fn: RewardCallable
    weight: float = 1.0


def resolve_reward(function: str, key: str = "rewards.function") -> RewardCallable:
    """The function named `function`: a built-in name, or `package.module:function` to import.

    >>> resolve_reward("grpo.rewards.format:r1_format").__name__
    'r1_format'
    """
    if ":" not in function:
        if function not in REWARDS:
            raise UserError(f"{key}: no built-in reward {function!r} (built-in: {', '.join(REWARDS)}; "
                            "or give package.module:function)")
        return REWARDS[function]
    module_name, _, attribute = function.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise UserError(f"{key}: cannot import module {module_name!r} for reward {function!r} ({error})") from None
    fn = getattr(module, attribute, None)
    if not callable(fn):
        raise UserError(f"{key}: module {module_name!r} has no function {attribute!r}")
    return fn


@dataclass(frozen=True)
class ScoredRewards:
    """Total reward (N,) float32, validity (N,) bool, and each function's scores (N,) by name."""

    total: torch.Tensor
    valid: torch.Tensor
    components: dict[str, torch.Tensor]
    component_valid: dict[str, torch.Tensor]


def score_weighted(
    rewards: Sequence[WeightedReward],
    completions: list[str],
    columns: dict[str, Sequence[object]],
    guard: RewardGuard | None = None,
) -> ScoredRewards:
    """Call every reward function through `guard` (strict when None) and form the weighted total."""
    if not rewards:
        raise UserError("rewards: a run needs at least one reward function")
    total = torch.zeros(len(completions))
    valid = torch.ones(len(completions), dtype=torch.bool)
    components, component_valid = {}, {}
    for reward in rewards:
        values, ok = score(reward.fn, reward.name, completions, columns, guard)
        total += reward.weight * values
        valid &= ok
        components[reward.name], component_valid[reward.name] = values, ok
    return ScoredRewards(torch.where(valid, total, 0.0), valid, components, component_valid)


def single(fn: RewardCallable, name: str | None = None) -> list[WeightedReward]:
    """One function with weight 1, named after itself: the shape of the pre-weighted API."""
    return [WeightedReward(name or getattr(fn, "__name__", "reward"), fn, 1.0)]

