"""A `TrainState` on a tiny local model, built the way the trainer tests need it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from transformers import PreTrainedModel

from grpo.config import load_config
from grpo.models.load import frozen_copy, load_policy, load_tokenizer
from grpo.rewards.combine import WeightedReward, single
from grpo.trainers.state import TrainState, build_state

# Appended before each test's own overrides, which therefore win.
SMALL_ROLLOUTS = ["rollout.max_new_tokens=8", "rollout.group_size=4"]


def build_test_state(
    model_dir: Path,
    overrides: list[str],
    rewards: list[WeightedReward] | Callable[..., list[float | None]],
    perturb_reference: bool = False,
    policy: PreTrainedModel | None = None,
    adapter_reference: bool = False,
) -> TrainState:
    """float32 CPU policy from `model_dir` (or `policy`), a frozen copy as reference when beta > 0
    (optionally nudged away from the policy), and the sampler RNG seeded with 0.

    `rewards` is a weighted reward list or one plain reward function.
    """
    config = load_config(overrides=[*SMALL_ROLLOUTS, *overrides])
    if policy is None:
        policy = load_policy(model_dir, "float32", torch.device("cpu"))
    reference = frozen_copy(policy) if config.algo.beta > 0 and not adapter_reference else None
    if perturb_reference and reference is not None:
        with torch.no_grad():
            for parameter in reference.parameters():
                parameter.add_(0.05 * torch.randn(parameter.shape, generator=torch.Generator().manual_seed(1)))
    return build_state(config, policy, reference, load_tokenizer(model_dir), torch.Generator().manual_seed(0),
                       rewards if isinstance(rewards, list) else single(rewards),
                       adapter_reference=adapter_reference)


@pytest.fixture
def make_state() -> Callable[..., TrainState]:
    """`make_state(model_dir, overrides, rewards, perturb_reference=False, policy=None, adapter_reference=False)`."""
    return build_test_state
