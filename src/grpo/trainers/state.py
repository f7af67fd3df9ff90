"""What every method trains and what a checkpoint saves: `TrainState`, built once per run."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from grpo.config import RunConfig
from grpo.models.value_head import ValueModel
from grpo.rewards.combine import WeightedReward
from grpo.rewards.guard import RewardGuard
from grpo.rollout.sampler import Sampler
from grpo.tasks.api import Example
from grpo.trainers.explain_log import ExplainCapture
from grpo.trainers.optim import OptimState, build_optimizer
from grpo.trainers.parallel import TrainModules, distribute


@dataclass
class TrainState:
    """The models, optimiser, sampler RNG and reward plumbing shared by GRPO, PPO and DPO.

    `policy` generates and is exported; `trainable` is the module each micro-batch's loss runs
    inside (`TrainModules`, possibly DDP-wrapped or FSDP-sharded). `reference` is the frozen
    reference, or None when the run needs none or when LoRA's reference is the policy with its
    adapter off (`adapter_reference`). `critic` is PPO's value model. `check_logprobs` asks the next
    step to compare trainer and sampler log-probs (a run's first step). `more_prompts` gives dynamic
    sampling this rank's share of a fresh prompt batch.
    """

    config: RunConfig
    policy: PreTrainedModel
    trainable: torch.nn.Module
    reference: PreTrainedModel | None
    tokenizer: PreTrainedTokenizerBase
    optim: OptimState
    generator: torch.Generator
    rewards: list[WeightedReward]
    guard: RewardGuard
    critic: ValueModel | None = None
    adapter_reference: bool = False
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    more_prompts: Callable[[], list[Example]] | None = None
    check_logprobs: bool = True
    sampler: Sampler | None = None  # built from rollout.backend at the first sampling (grpo.rollout.sampler)
    explain: ExplainCapture | None = None  # records a logged step's loss inputs for `grpo explain`

    def parameters(self) -> list[torch.nn.Parameter]:
        """Every trained parameter once (a value head's shared backbone is not counted twice)."""
        modules = [self.policy] if self.critic is None else [self.policy, self.critic]
        seen: dict[int, torch.nn.Parameter] = {}
        for module in modules:
            for parameter in module.parameters():
                if parameter.requires_grad:
                    seen.setdefault(id(parameter), parameter)
        return list(seen.values())


def build_state(
    config: RunConfig,
    policy: PreTrainedModel,
    reference: PreTrainedModel | None,
    tokenizer: PreTrainedTokenizerBase,
    generator: torch.Generator,
    rewards: list[WeightedReward],
    guard: RewardGuard | None = None,
    critic: ValueModel | None = None,
    adapter_reference: bool = False,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    autocast_dtype: torch.dtype | None = None,
) -> TrainState:
    """Spread the trained modules over the ranks (`distributed.strategy`), then build the optimiser
    over their parameters, so that under FSDP2 it holds this rank's shards only."""
    device = next(policy.parameters()).device
    frozen = [reference] if reference is not None else []
    trainable = distribute(TrainModules(policy, critic), frozen, config.distributed.strategy, device, autocast_dtype)
    state = TrainState(config, policy, trainable, reference, tokenizer, None, generator, rewards,  # type: ignore[arg-type]
                       guard if guard is not None else RewardGuard(), critic, adapter_reference, autocast)
    state.optim = build_optimizer(state.parameters(), config.optim)
    return state
