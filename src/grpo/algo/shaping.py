"""Reward shaping around the policy loss: KL placement, overlong handling, dynamic-sampling filter, PPO rewards.

Two registries live here, both filled by this module:

- ``KL_PLACEMENTS``: where the KL penalty to the reference goes. Each entry has the signature
  ``(beta) -> KLWeights`` and returns the weight of the KL in the loss and in the reward, so the
  trainer applies both weights unconditionally and never branches on the name.
- ``OVERLONG_POLICIES``: what happens to completions that hit the generation budget. Each entry has
  the signature ``(rewards (N,), completion_mask (N,T), completion_lengths (N,), truncated (N,),
  max_completion_length, buffer, penalty) -> OverlongOutput`` (shaped rewards and the loss mask).

The plain functions (``soft_overlong_penalty``, ``kl_penalized_rewards``, ``ppo_token_rewards``,
``informative_groups``) are the formulas; the registry entries only choose among them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from grpo.algo.masked import masked_sum
from grpo.algo.registry import KL_PLACEMENTS, OVERLONG_POLICIES


@dataclass(frozen=True)
class KLWeights:
    """Weight of the per-token KL estimate in the loss and in the (sequence or token) reward."""

    in_loss: float
    in_reward: float


@KL_PLACEMENTS.register("loss")
def kl_in_loss(beta: float) -> KLWeights:
    """The KL estimate is added to the per-token loss with weight beta (GRPO).

    Equation: J = E[min(ratio * A, clip(ratio) * A) - beta * D_KL(pi_theta || pi_ref)].
    Paper: Shao et al. 2024, "DeepSeekMath" (arXiv:2402.03300), eq. 3: GRPO "regularizes by directly
    adding the KL divergence between the trained policy and the reference policy to the loss".
    Shapes: beta (float) -> KLWeights(in_loss=beta, in_reward=0).
    """
    return KLWeights(in_loss=beta, in_reward=0.0)


@KL_PLACEMENTS.register("reward")
def kl_in_reward(beta: float) -> KLWeights:
    """The KL estimate of the sampled tokens is subtracted from the reward (PPO-style RLHF).

    Equation: r'_i = r_i - beta * sum_t KL_t(o_i), with KL_t estimated at the sampling policy, a
    constant (no gradient flows through it); the loss has no KL term.
    Papers: Ouyang et al. 2022, "Training language models to follow instructions with human
    feedback" (InstructGPT), eq. 2; Stiennon et al. 2020, "Learning to summarize from human feedback".
    Shapes: beta (float) -> KLWeights(in_loss=0, in_reward=beta).
    """
    return KLWeights(in_loss=0.0, in_reward=beta)


def kl_penalized_rewards(rewards: Tensor, kl: Tensor, completion_mask: Tensor, beta: float) -> Tensor:
    """Sequence rewards minus beta times the summed per-token KL of each completion.

    Equation: r'_i = r_i - beta * sum_{t in o_i} KL_t.
    Paper: Ouyang et al. 2022 (InstructGPT), eq. 2 (the KL term of the RL objective, applied per sample).
    Shapes: rewards (N,) float; kl (N, T) float; completion_mask (N, T) bool -> (N,).
    Conventions: ``kl`` is detached; masked positions are ignored even if they hold NaN.
    Example: rewards [1, 0], kl [[0.1, 0.2], [0.5, 9.9]] with the second row's last token masked,
    beta 0.5 -> [1 - 0.15, 0 - 0.25] = [0.85, -0.25].
    """
    return rewards - beta * masked_sum(kl.detach(), completion_mask, dim=1)


def ppo_token_rewards(scores: Tensor, kl: Tensor, completion_mask: Tensor, beta: float) -> Tensor:
    """Per-token PPO rewards: -beta * KL_t at every token, plus the sequence score at the last token.

    Equation: r_t = -beta * KL_t + [t = last active token] * score.
    Papers: Ziegler et al. 2019, "Fine-Tuning Language Models from Human Preferences", eq. 2;
    Ouyang et al. 2022 (InstructGPT), eq. 2 (the per-token form used by TRL's PPO and verl).
    Shapes: scores (N,) float; kl (N, T) float; completion_mask (N, T) bool -> rewards (N, T).
    Conventions: ``kl`` is detached; masked positions are 0; a row with no active token gets no score.
    Example: score 1, kl [0.2, 0.4, x] with mask [1, 1, 0], beta 0.5 -> [-0.1, 1 - 0.2, 0] = [-0.1, 0.8, 0].
    """
    token_rewards = -beta * kl.detach()  # (N, T)
    lengths = completion_mask.sum(dim=1)  # (N,)
    last = (lengths - 1).clamp(min=0)  # (N,) column of the last active token
    bonus = torch.zeros_like(token_rewards).scatter(1, last.unsqueeze(1), scores.unsqueeze(1).to(token_rewards))
    token_rewards = token_rewards + torch.where(lengths.unsqueeze(1) > 0, bonus, torch.zeros_like(bonus))
    return torch.where(completion_mask, token_rewards, torch.zeros_like(token_rewards))


def soft_overlong_penalty(completion_lengths: Tensor, max_completion_length: int, buffer: int) -> Tensor:
    """DAPO's soft overlong punishment: 0 up to L_max - L_cache, then linearly down to -1 at L_max.

    Equation: R_len(y) = 0                              if |y| <= L_max - L_cache
                       = ((L_max - L_cache) - |y|) / L_cache   if L_max - L_cache < |y| <= L_max
                       = -1                             if |y| > L_max.
    Paper: Yu et al. 2025, "DAPO" (arXiv:2503.14476), Sec. 3.4, eq. 13.
    Shapes: completion_lengths (N,) int or float -> (N,) float32.
    Conventions: |y| counts the EOS token; ``buffer`` = L_cache must satisfy 0 < L_cache <= L_max.
    Example: L_max 20, L_cache 4: lengths [10, 16, 17, 19, 20] -> [0, 0, -0.25, -0.75, -1.0].
    """
    if not 0 < buffer <= max_completion_length:
        raise ValueError(f"buffer must be in (0, max_completion_length={max_completion_length}], got {buffer}")
    lengths = completion_lengths.float()
    free = float(max_completion_length - buffer)
    return torch.clamp((free - lengths) / buffer, min=-1.0, max=0.0)


@dataclass(frozen=True)
class OverlongOutput:
    """Rewards after overlong shaping (N,) and the mask of tokens the loss counts (N, T) bool."""

    rewards: Tensor
    loss_mask: Tensor


def _check_overlong(rewards: Tensor, completion_mask: Tensor, truncated: Tensor) -> None:
    if rewards.shape != truncated.shape or completion_mask.shape[:1] != rewards.shape:
        raise ValueError(f"rewards {tuple(rewards.shape)}, truncated {tuple(truncated.shape)} and "
                         f"completion_mask {tuple(completion_mask.shape)} must agree on N")


@OVERLONG_POLICIES.register("none")
def overlong_none(
    rewards: Tensor, completion_mask: Tensor, completion_lengths: Tensor, truncated: Tensor,
    max_completion_length: int, buffer: int, penalty: float,
) -> OverlongOutput:
    """Truncated completions are treated like any other (DeepSeekMath's default).

    Equation: r' = r; loss mask = completion mask.
    Paper: Shao et al. 2024, "DeepSeekMath" (no special handling of length).
    Shapes: rewards (N,), completion_mask (N, T) -> OverlongOutput with the inputs unchanged.
    """
    _check_overlong(rewards, completion_mask, truncated)
    return OverlongOutput(rewards, completion_mask)


@OVERLONG_POLICIES.register("mask")
def overlong_mask(
    rewards: Tensor, completion_mask: Tensor, completion_lengths: Tensor, truncated: Tensor,
    max_completion_length: int, buffer: int, penalty: float,
) -> OverlongOutput:
    """Overlong filtering: the tokens of a truncated completion are left out of the loss.

    Equation: loss mask_{i,t} = completion mask_{i,t} and not truncated_i; r' = r (the reward still
    counts in its group's baseline).
    Paper: Yu et al. 2025, "DAPO" (arXiv:2503.14476), Sec. 3.4 "Overlong Filtering".
    Shapes: truncated (N,) bool -> OverlongOutput(rewards (N,), loss_mask (N, T) bool).
    """
    _check_overlong(rewards, completion_mask, truncated)
    return OverlongOutput(rewards, completion_mask & ~truncated.unsqueeze(1))


@OVERLONG_POLICIES.register("soft_penalty")
def overlong_soft_penalty(
    rewards: Tensor, completion_mask: Tensor, completion_lengths: Tensor, truncated: Tensor,
    max_completion_length: int, buffer: int, penalty: float,
) -> OverlongOutput:
    """Soft overlong punishment added to the reward, scaled by ``penalty`` (DAPO uses 1).

    Equation: r' = r + penalty * R_len(|o|), R_len from ``soft_overlong_penalty``.
    Paper: Yu et al. 2025, "DAPO" (arXiv:2503.14476), Sec. 3.4, eq. 13.
    Shapes: completion_lengths (N,) -> OverlongOutput(rewards (N,), loss_mask = completion_mask).
    """
    _check_overlong(rewards, completion_mask, truncated)
    shaped = rewards + penalty * soft_overlong_penalty(completion_lengths, max_completion_length, buffer).to(rewards)
    return OverlongOutput(shaped, completion_mask)


def informative_groups(rewards: Tensor, valid: Tensor, group_size: int) -> Tensor:
    """Which groups carry a learning signal: at least two scored rewards that are not all equal.

    Equation: keep_b = (#valid in group b >= 2) and max_{valid} r > min_{valid} r.
    Paper: Yu et al. 2025, "DAPO" (arXiv:2503.14476), Sec. 3.2 "Dynamic Sampling", eq. 11 constraint
    0 < |{o_i : is_equivalent(a, o_i)}| < G.
    Shapes: rewards (N,) float, valid (N,) bool -> (B,) bool, N = B*G prompt-major.
    Conventions: invalid rewards are ignored (even NaN); the test is exact (max > min), like the
    advantage estimators' zero-signal rule, so a kept group always has non-zero advantages.
    """
    valid = valid.reshape(-1, group_size)  # (B, G)
    grouped = rewards.reshape(-1, group_size)  # (B, G)
    inf = torch.full_like(grouped, float("inf"))
    high = torch.where(valid, grouped, -inf).amax(dim=1)
    low = torch.where(valid, grouped, inf).amin(dim=1)
    return (valid.sum(dim=1) >= 2) & (high > low)
