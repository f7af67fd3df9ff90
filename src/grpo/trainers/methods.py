"""The training methods by name: `algorithm: grpo | ppo | dpo` looks its entry up in `METHODS`.

A method says which networks it needs (a reference, a critic) and builds its step function from
the shared `TrainState`; `train` hands that step to the shared `run_loop`. Nothing outside this
table branches on the method's name.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from grpo.config import RunConfig
from grpo.tasks.api import Example
from grpo.trainers.dpo import dpo_step
from grpo.trainers.dpo_pairs import PairSource, offline_pairs, online_pairs
from grpo.trainers.grpo import grpo_step
from grpo.trainers.loop import StepFn
from grpo.trainers.ppo import ppo_step
from grpo.trainers.state import TrainState


def _pair_source(state: TrainState) -> PairSource:
    config = state.config
    if config.dpo.source == "offline":
        return offline_pairs(state, Path(config.dpo.data or ""), config.seed)
    return online_pairs(state)


def _dpo(state: TrainState) -> StepFn:
    source = _pair_source(state)
    return lambda examples: dpo_step(state, source, examples)


@dataclass(frozen=True)
class Method:
    """How to build a method's step, whether it needs the frozen reference under a config, and
    which critic layout it trains (None: no critic)."""

    build: Callable[[TrainState], StepFn]
    needs_reference: Callable[[RunConfig], bool]
    critic: Callable[[RunConfig], str | None] = lambda config: None


METHODS: dict[str, Method] = {
    "grpo": Method(lambda state: lambda examples: grpo_step(state, examples), lambda config: config.algo.beta > 0),
    "ppo": Method(lambda state: lambda examples: ppo_step(state, examples), lambda config: config.algo.beta > 0,
                  lambda config: config.ppo.critic),
    "dpo": Method(_dpo, lambda config: True),  # DPO's loss is defined against the reference
}


def with_reference_refresh(step: StepFn, state: TrainState, every: int) -> StepFn:
    """Copy the policy's weights into the reference after every `every`-th step (0: never).

    Keeps the KL anchor near the current policy in long runs, as in Kimi k1.5 (Team 2025, Sec. 2.3.2)
    and TRL's `sync_ref_model`; the step where it happens logs `reference_refreshed` = 1.
    """
    if state.reference is None or every == 0:
        return step
    counter = itertools.count(1)

    def refreshing(examples: list[Example]) -> tuple[dict, list]:
        stats, samples = step(examples)
        refreshed = next(counter) % every == 0
        if refreshed:
            state.reference.load_state_dict(state.policy.state_dict())
        return {**stats, "reference_refreshed": torch.tensor(float(refreshed))}, samples

    return refreshing


def count_models(*models: torch.nn.Module | None) -> int:
    """Number of distinct full networks among `models` (None and repeats are not counted)."""
    return len({id(model) for model in models if model is not None})
