"""Outcome-reward advantage estimators: one scalar advantage per completion.

Every estimator has the signature ``(inputs: AdvantageInputs) -> Tensor (N,)`` and is registered in
``ADVANTAGE_ESTIMATORS``. The advantage of completion i is later broadcast to all of its tokens
(DeepSeekMath Sec. 4.1.2, "outcome supervision": A_hat_{i,t} = r_tilde_i for every t).

Conventions shared by all estimators (they change numbers, so they are stated once here):
- Completions are ordered prompt-major: rows i*G .. i*G+G-1 belong to prompt i.
- ``valid`` False marks a completion whose reward could not be scored (None or non-finite). It is left
  out of every mean and std and its advantage is exactly 0; its reward value is never read, so a
  NaN there is harmless.
- A group with fewer than 2 valid completions, or whose valid rewards are all equal, carries no
  relative signal: every advantage in it is exactly 0 (no NaN, whatever ``eps``).
- ``std="sample"`` divides the squared deviations by n - 1 (Bessel; torch's default and what
  DeepSeekMath's reference code uses), ``std="population"`` by n (numpy's default).
- ``eps`` is added to the std (outside the square root), as in TRL: A = (r - mean) / (std + eps).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from grpo.algo.masked import masked_sum
from grpo.algo.registry import ADVANTAGE_ESTIMATORS

StdKind = Literal["sample", "population"]


@dataclass(frozen=True)
class AdvantageInputs:
    """Everything an advantage estimator may read.

    Fields:
        rewards: (N,) float, one scalar reward per completion, N = B*G, prompt-major.
        valid: (N,) bool, True where the reward was scored; False rows are ignored and get 0.
        group_size: G, completions per prompt; N must be a multiple of it.
        std: "sample" (divide by n - 1) or "population" (divide by n).
        eps: added to the std before dividing.
    """

    rewards: Tensor
    valid: Tensor
    group_size: int
    std: StdKind = "sample"
    eps: float = 1e-4

    def __post_init__(self) -> None:
        if self.rewards.ndim != 1 or not self.rewards.is_floating_point():
            raise ValueError(f"rewards must be a 1-d float tensor, got shape {tuple(self.rewards.shape)} "
                             f"dtype {self.rewards.dtype}")
        if self.valid.shape != self.rewards.shape or self.valid.dtype != torch.bool:
            raise ValueError(f"valid must be a bool tensor shaped like rewards {tuple(self.rewards.shape)}, "
                             f"got shape {tuple(self.valid.shape)} dtype {self.valid.dtype}")
        if self.group_size < 1 or self.rewards.shape[0] % self.group_size != 0:
            raise ValueError(f"group_size must be >= 1 and divide the number of completions "
                             f"{self.rewards.shape[0]}, got {self.group_size}")
        if self.std not in ("sample", "population"):
            raise ValueError(f"std must be 'sample' or 'population', got {self.std!r}")
        if self.eps < 0:
            raise ValueError(f"eps must be >= 0, got {self.eps}")


@dataclass(frozen=True)
class _Groups:
    """Rewards viewed as (B, G) with the per-group statistics the estimators share."""

    rewards: Tensor  # (B, G), invalid entries replaced by 0
    valid: Tensor  # (B, G) bool
    count: Tensor  # (B, 1) int, valid members per group
    mean: Tensor  # (B, 1) mean of the valid rewards (0 for an empty group)
    std: Tensor  # (B, 1) sample or population std of the valid rewards
    keep: Tensor  # (B, G) bool, valid and in a group with >= 2 valid, not all-equal rewards


def _std_denominator(count: Tensor, std: StdKind) -> Tensor:
    """n - 1 for the sample std, n for the population std, clamped to at least 1."""
    return (count - 1 if std == "sample" else count).clamp(min=1)


def _groups(inputs: AdvantageInputs) -> _Groups:
    """Reshape to (B, G) and compute each group's valid count, mean, std and which entries keep signal."""
    g = inputs.group_size
    valid = inputs.valid.reshape(-1, g)  # (B, G)
    raw = inputs.rewards.reshape(-1, g)  # (B, G)
    rewards = torch.where(valid, raw, torch.zeros_like(raw))  # an unscored NaN never reaches the maths
    count = valid.sum(dim=1, keepdim=True)  # (B, 1)
    mean = masked_sum(rewards, valid, dim=1).unsqueeze(1) / count.clamp(min=1)  # (B, 1)
    sq_dev = masked_sum((rewards - mean) ** 2, valid, dim=1).unsqueeze(1)  # (B, 1)
    std = torch.sqrt(sq_dev / _std_denominator(count, inputs.std))  # (B, 1)
    # "All valid rewards equal" is tested exactly with max == min, not with std == 0, because the
    # float mean of equal values can differ from them in the last bit.
    inf = torch.full_like(rewards, float("inf"))
    high = torch.where(valid, rewards, -inf).amax(dim=1, keepdim=True)
    low = torch.where(valid, rewards, inf).amin(dim=1, keepdim=True)
    keep = valid & (count >= 2) & (high > low)  # (B, G)
    return _Groups(rewards=rewards, valid=valid, count=count, mean=mean, std=std, keep=keep)


def _finish(groups: _Groups, advantages: Tensor) -> Tensor:
    """Zero every entry without signal (see module conventions) and flatten (B, G) -> (N,)."""
    return torch.where(groups.keep, advantages, torch.zeros_like(advantages)).reshape(-1)


def _batch_std(values: Tensor, mask: Tensor, std: StdKind) -> Tensor:
    """Sample or population std (0-d) of all entries of ``values`` where ``mask`` is True."""
    count = mask.sum()
    mean = masked_sum(values, mask) / count.clamp(min=1)
    return torch.sqrt(masked_sum((values - mean) ** 2, mask) / _std_denominator(count, std))


@ADVANTAGE_ESTIMATORS.register("grpo")
def grpo_advantages(inputs: AdvantageInputs) -> Tensor:
    """Group-relative advantage: each reward standardised within its prompt's group.

    Equation: A_i = (r_i - mean(r_group)) / (std(r_group) + eps).
    Paper: Shao et al. 2024, "DeepSeekMath" (arXiv:2402.03300), Sec. 4.1.2 (outcome supervision,
    r_tilde_i = (r_i - mean(r)) / std(r)); eps is TRL's addition.
    Shapes: inputs.rewards (N,) -> advantages (N,).
    Conventions: std per ``inputs.std``; eps outside the sqrt; see the module docstring for invalid
    rewards, small groups and all-equal groups.
    Example: one group of 10 with rewards [0,0,0,1,0,0,0,1,0,0], population std, eps 0: mean 0.2,
    std 0.4, so zeros get -0.5 and ones get 2.0.
    """
    groups = _groups(inputs)
    return _finish(groups, (groups.rewards - groups.mean) / (groups.std + inputs.eps))


@ADVANTAGE_ESTIMATORS.register("grpo_batch_std")
def grpo_batch_std_advantages(inputs: AdvantageInputs) -> Tensor:
    """Group mean subtracted, divided by the std of all valid rewards in the batch.

    Equation: A_i = (r_i - mean(r_group)) / (std(r_batch) + eps), std(r_batch) over every valid
    reward of the batch (all prompts together).
    Paper: Liu et al. 2025, "Part I: Tricks or Traps? A Deep Dive into RL for LLM Reasoning"
    (arXiv:2508.08221, "Lite PPO": group-level mean, batch-level std); TRL's ``scale_rewards="batch"``.
    Shapes: inputs.rewards (N,) -> advantages (N,).
    Conventions: std per ``inputs.std`` over the valid raw rewards; eps outside the sqrt.
    """
    groups = _groups(inputs)
    batch_std = _batch_std(groups.rewards, groups.valid, inputs.std)
    return _finish(groups, (groups.rewards - groups.mean) / (batch_std + inputs.eps))


@ADVANTAGE_ESTIMATORS.register("dr_grpo")
def dr_grpo_advantages(inputs: AdvantageInputs) -> Tensor:
    """Group mean subtracted, no std scaling (removes GRPO's question-difficulty bias).

    Equation: A_i = r_i - mean(r_group).
    Paper: Liu et al. 2025, "Understanding R1-Zero-Like Training: A Critical Perspective"
    (arXiv:2503.20783), Dr. GRPO, Sec. 3.
    Shapes: inputs.rewards (N,) -> advantages (N,). ``inputs.std`` and ``inputs.eps`` are not read.
    """
    groups = _groups(inputs)
    return _finish(groups, groups.rewards - groups.mean)


@ADVANTAGE_ESTIMATORS.register("rloo")
def rloo_advantages(inputs: AdvantageInputs) -> Tensor:
    """REINFORCE leave-one-out: each reward minus the mean of the other valid rewards in its group.

    Equation: A_i = r_i - (1 / (n - 1)) * sum_{j != i} r_j = n / (n - 1) * (r_i - mean(r_group)),
    with n the number of valid rewards in the group.
    Paper: Ahmadian et al. 2024, "Back to Basics: Revisiting REINFORCE Style Optimization for Learning
    from Human Feedback in LLMs" (arXiv:2402.14740), RLOO estimator (after Kool et al. 2019).
    Shapes: inputs.rewards (N,) -> advantages (N,). ``inputs.std`` and ``inputs.eps`` are not read.
    """
    groups = _groups(inputs)
    group_sum = groups.mean * groups.count  # (B, 1)
    others_mean = (group_sum - groups.rewards) / (groups.count - 1).clamp(min=1)  # (B, G)
    return _finish(groups, groups.rewards - others_mean)


@ADVANTAGE_ESTIMATORS.register("reinforce_pp")
def reinforce_pp_advantages(inputs: AdvantageInputs) -> Tensor:
    """REINFORCE++-baseline: group mean subtracted, then whitened over the whole batch.

    Equation: a_i = r_i - mean(r_group); A_i = (a_i - mean(a_batch)) / (std(a_batch) + eps), batch
    statistics over every valid completion (including those in zero-signal groups, whose a_i = 0).
    Paper: Hu et al. 2025, "REINFORCE++" (arXiv:2501.03262), the REINFORCE++-baseline variant.
    Shapes: inputs.rewards (N,) -> advantages (N,).
    Conventions: std per ``inputs.std``, eps outside the sqrt. Deviation: OpenRLHF whitens the
    per-token advantages (longer completions weigh more); this whitens one value per completion.
    If no group has signal, every advantage is 0.
    """
    groups = _groups(inputs)
    centered = torch.where(groups.keep, groups.rewards - groups.mean, torch.zeros_like(groups.rewards))
    count = groups.valid.sum()
    batch_mean = masked_sum(centered, groups.valid) / count.clamp(min=1)
    batch_std = _batch_std(centered, groups.valid, inputs.std)
    whitened = (centered - batch_mean) / (batch_std + inputs.eps)
    has_signal = groups.keep.any()
    return torch.where(groups.valid & has_signal, whitened, torch.zeros_like(whitened)).reshape(-1)
