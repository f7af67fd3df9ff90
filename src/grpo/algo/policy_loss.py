"""Clipped policy-gradient losses on per-token log ratios.

Every loss has the signature ``(log_ratio (N,T), advantages (N,) or (N,T), completion_mask (N,T) bool,
eps_low, eps_high, dual_clip) -> PolicyLossOutput`` and is registered in ``POLICY_LOSSES``. The
log ratio comes from a ratio level (``grpo.algo.ratio``), so the same loss serves token-level
GRPO/PPO and sequence-level GSPO. The per-token loss is reduced by a ``grpo.algo.aggregate`` entry.

Conventions: ``advantages`` of shape (N,) are broadcast to every token of their completion; they are
constants (detached). Masked positions of ``per_token_loss`` are exactly 0. Statistics are detached
0-d tensors, masked means over completion tokens; nothing is synchronised or logged here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from grpo.algo.masked import masked_mean
from grpo.algo.registry import POLICY_LOSSES


@dataclass(frozen=True)
class PolicyLossStats:
    """Detached 0-d statistics of one policy-loss call, masked means over completion tokens.

    Fields:
        clip_fraction: share of tokens where a clip bound decides the objective, i.e. the clipped
            branch of the min is strictly the one taken: (A > 0 and ratio > 1 + eps_high) or
            (A < 0 and ratio < 1 - eps_low). This is TRL's ``clip_ratio/region_mean`` and equals
            verl's ``pg_clipfrac`` (clipped loss > unclipped loss); tokens with A = 0 never count.
        clip_fraction_low: the (A < 0 and ratio < 1 - eps_low) part.
        clip_fraction_high: the (A > 0 and ratio > 1 + eps_high) part.
        dual_clip_fraction: share of tokens where the dual-clip bound c * A is taken
            (A < 0 and ratio > c); 0 when dual clip is off. Not included in ``clip_fraction``.
        ratio_mean: mean of ratio = exp(log_ratio).
        ratio_max: largest ratio over completion tokens (0 if there are none).
        approx_kl: mean of (ratio - 1) - log_ratio, Schulman's k3 estimate of KL(pi_old || pi_theta)
            from tokens sampled by pi_old (the estimator CleanRL logs as ``approx_kl``).
    """

    clip_fraction: Tensor
    clip_fraction_low: Tensor
    clip_fraction_high: Tensor
    dual_clip_fraction: Tensor
    ratio_mean: Tensor
    ratio_max: Tensor
    approx_kl: Tensor


@dataclass(frozen=True)
class PolicyLossOutput:
    """Per-token loss (N, T), 0 at masked positions, and its detached statistics."""

    per_token_loss: Tensor
    stats: PolicyLossStats


def clipped_surrogate_objective(ratio: Tensor, advantages: Tensor, eps_low: float, eps_high: float) -> Tensor:
    """The PPO clipped surrogate objective per token (to be maximised; not negated).

    Equation: L = min(ratio * A, clip(ratio, 1 - eps_low, 1 + eps_high) * A).
    Paper: Schulman et al. 2017, "Proximal Policy Optimization Algorithms", eq. 7 (eps_low = eps_high);
    Yu et al. 2025, "DAPO" (arXiv:2503.14476), Sec. 3.1 "Clip-Higher" (eps_high > eps_low).
    Shapes: ``ratio`` and ``advantages`` broadcast together; the result has their broadcast shape.
    Example: eps 0.1, A = [2, 2, -2, -2], ratio = [1.2, 1.0, 1.2, 0.8] -> [2.2, 2.0, -2.4, -1.8].
    """
    clipped_ratio = torch.clamp(ratio, 1.0 - eps_low, 1.0 + eps_high)
    return torch.minimum(ratio * advantages, clipped_ratio * advantages)


def _check_clip_args(eps_low: float, eps_high: float, dual_clip: float | None) -> None:
    if not 0.0 <= eps_low < 1.0:
        raise ValueError(f"eps_low must be in [0, 1), got {eps_low}")
    if eps_high < 0.0:
        raise ValueError(f"eps_high must be >= 0, got {eps_high}")
    if dual_clip is not None and dual_clip <= 1.0:
        raise ValueError(f"dual_clip must be > 1 (or None to disable), got {dual_clip}")


def _per_token_advantages(advantages: Tensor, log_ratio: Tensor) -> Tensor:
    """Broadcast (N,) advantages to (N, T); (N, T) advantages pass through. Always detached."""
    if advantages.shape == log_ratio.shape[:1]:
        advantages = advantages.unsqueeze(-1)  # (N, 1)
    elif advantages.shape != log_ratio.shape:
        raise ValueError(f"advantages must have shape (N,) or (N, T) = {tuple(log_ratio.shape)}, "
                         f"got {tuple(advantages.shape)}")
    return advantages.detach().expand_as(log_ratio)


def _fraction(flags: Tensor, completion_mask: Tensor) -> Tensor:
    """Share of completion tokens where ``flags`` is True (0-d float)."""
    return masked_mean(flags.float(), completion_mask)


def _clip_stats(
    log_ratio: Tensor,
    advantages: Tensor,
    completion_mask: Tensor,
    eps_low: float,
    eps_high: float,
    dual_clip: float | None,
) -> PolicyLossStats:
    """Statistics for the clipped loss; all inputs (N, T), log_ratio already zero at masked positions."""
    log_ratio = log_ratio.detach()
    ratio = torch.exp(log_ratio)
    low = (ratio < 1.0 - eps_low) & (advantages < 0)
    high = (ratio > 1.0 + eps_high) & (advantages > 0)
    if dual_clip is None:
        dual = torch.zeros_like(low)
    else:
        dual = (ratio > dual_clip) & (advantages < 0)
    return PolicyLossStats(
        clip_fraction=_fraction(low | high, completion_mask),
        clip_fraction_low=_fraction(low, completion_mask),
        clip_fraction_high=_fraction(high, completion_mask),
        dual_clip_fraction=_fraction(dual, completion_mask),
        ratio_mean=masked_mean(ratio, completion_mask),
        # Ratios are positive, so filling masked positions with 0 leaves the max of the active ones.
        ratio_max=torch.where(completion_mask, ratio, torch.zeros_like(ratio)).amax(),
        approx_kl=masked_mean(ratio - 1.0 - log_ratio, completion_mask),
    )


@POLICY_LOSSES.register("clip")
def clipped_policy_loss(
    log_ratio: Tensor,
    advantages: Tensor,
    completion_mask: Tensor,
    eps_low: float,
    eps_high: float,
    dual_clip: float | None,
) -> PolicyLossOutput:
    """Negated PPO/GRPO clipped surrogate per token, with optional clip-higher and dual clip.

    Equation: ratio = exp(log_ratio);
      J = min(ratio * A, clip(ratio, 1 - eps_low, 1 + eps_high) * A);
      with dual clip c and A < 0: J = max(J, c * A);
      per_token_loss = -J.
    Papers: Shao et al. 2024, "DeepSeekMath", eq. 3 (symmetric eps, 0.2; KL term handled elsewhere);
    Yu et al. 2025, "DAPO" (arXiv:2503.14476), Sec. 3.1 (clip-higher, eps_high > eps_low);
    Ye et al. 2020, "Mastering Complex Control in MOBA Games with Deep Reinforcement Learning",
    dual-clip PPO (c > 1 bounds the loss of a negative-advantage token whose ratio is huge).
    Shapes: log_ratio (N, T); advantages (N,) or (N, T); completion_mask (N, T) bool ->
    per_token_loss (N, T) and PolicyLossStats.
    Conventions: masked positions of log_ratio are replaced by 0 before exp, so padding never yields
    inf or NaN; gradients are exactly 0 where a clip bound is taken.
    """
    _check_clip_args(eps_low, eps_high, dual_clip)
    adv = _per_token_advantages(advantages, log_ratio)  # (N, T)
    log_ratio = torch.where(completion_mask, log_ratio, torch.zeros_like(log_ratio))
    objective = clipped_surrogate_objective(torch.exp(log_ratio), adv, eps_low, eps_high)  # (N, T)
    if dual_clip is not None:
        objective = torch.where(adv < 0, torch.maximum(objective, dual_clip * adv), objective)
    per_token_loss = torch.where(completion_mask, -objective, torch.zeros_like(objective))
    stats = _clip_stats(log_ratio, adv, completion_mask, eps_low, eps_high, dual_clip)
    return PolicyLossOutput(per_token_loss=per_token_loss, stats=stats)
