"""Generalised advantage estimation (GAE) over completion tokens, for PPO with a critic."""

from __future__ import annotations

import torch
from torch import Tensor


def gae_advantages_and_returns(
    rewards: Tensor,
    values: Tensor,
    completion_mask: Tensor,
    gamma: float,
    lam: float,
) -> tuple[Tensor, Tensor]:
    """Per-token GAE advantages and the value targets (returns) they imply.

    Equation: delta_t = r_t + gamma * V_{t+1} - V_t;
              A_t = delta_t + gamma * lam * A_{t+1}  (= sum_l (gamma * lam)^l delta_{t+l});
              R_t = A_t + V_t.
    Paper: Schulman et al. 2016, "High-Dimensional Continuous Control Using Generalized Advantage
    Estimation", eq. 16.
    Shapes: rewards, values (N, T) float; completion_mask (N, T) bool ->
    (advantages (N, T), returns (N, T)).
    Conventions:
    - The episode ends after the last active token: V beyond it is 0 and A beyond it is 0 (terminal).
    - Masked positions are skipped, not treated as time steps: the successor of an active token is
      the next *active* token of its row (verl's convention), which matters only for masks with holes.
      For the usual prefix masks this is the same as stopping at the end of the completion.
    - Masked positions of both outputs are 0, whatever the inputs hold there.
    - Both outputs are constants: ``rewards`` and ``values`` are detached before use.
    """
    rewards = rewards.detach()
    values = values.detach()
    zeros = torch.zeros_like(values[:, 0])  # (N,)
    next_value, next_advantage = zeros, zeros  # V_{t+1}, A_{t+1}: 0 beyond the last active token
    columns: list[Tensor] = []
    for t in reversed(range(values.shape[1])):
        active = completion_mask[:, t]  # (N,)
        delta = rewards[:, t] + gamma * next_value - values[:, t]  # (N,)
        advantage = delta + gamma * lam * next_advantage  # (N,)
        columns.append(torch.where(active, advantage, zeros))
        next_value = torch.where(active, values[:, t], next_value)
        next_advantage = torch.where(active, advantage, next_advantage)
    advantages = torch.stack(columns[::-1], dim=1)  # (N, T)
    returns = torch.where(completion_mask, advantages + values, torch.zeros_like(values))  # (N, T)
    return advantages, returns
