"""Clipped value (critic) loss for PPO."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from grpo.algo.masked import masked_mean


@dataclass(frozen=True)
class ValueLossStats:
    """Detached 0-d statistics, masked means over completion tokens.

    Fields:
        clip_fraction: share of tokens where the clipped term is strictly larger, i.e. the clip
            decides the loss (verl's ``vf_clipfrac``).
        value_mean: mean predicted value.
        value_mse: mean of (values - returns)^2, unclipped.
    """

    clip_fraction: Tensor
    value_mean: Tensor
    value_mse: Tensor


def clipped_value_loss(
    values: Tensor,
    old_values: Tensor,
    returns: Tensor,
    completion_mask: Tensor,
    clip_range: float,
) -> tuple[Tensor, ValueLossStats]:
    """PPO2 clipped value loss: the worse of the unclipped and clipped squared errors.

    Equation: v_clip = old_values + clip(values - old_values, -clip_range, clip_range);
              loss_t = 0.5 * max((values - R)^2, (v_clip - R)^2).
    Reference: OpenAI Baselines ``ppo2`` value clipping (Dhariwal et al. 2017); discussed in Engstrom
    et al. 2020, "Implementation Matters in Deep Policy Gradients" (value function clipping).
    Shapes: values, old_values, returns (N, T) float; completion_mask (N, T) bool ->
    (per_token_loss (N, T), ValueLossStats).
    Conventions: ``old_values`` and ``returns`` are constants (detached); masked positions of the
    loss are 0. Reduce with a ``grpo.algo.aggregate`` entry.
    """
    if clip_range <= 0:
        raise ValueError(f"clip_range must be > 0, got {clip_range}")
    old_values, returns = old_values.detach(), returns.detach()
    clipped = old_values + torch.clamp(values - old_values, -clip_range, clip_range)  # (N, T)
    unclipped_error = (values - returns) ** 2  # (N, T)
    clipped_error = (clipped - returns) ** 2  # (N, T)
    per_token = 0.5 * torch.maximum(unclipped_error, clipped_error)
    per_token_loss = torch.where(completion_mask, per_token, torch.zeros_like(per_token))
    stats = ValueLossStats(
        clip_fraction=masked_mean((clipped_error > unclipped_error).float().detach(), completion_mask),
        value_mean=masked_mean(values.detach(), completion_mask),
        value_mse=masked_mean(unclipped_error.detach(), completion_mask),
    )
    return per_token_loss, stats
