"""One PPO step with a learned critic, as in InstructGPT-style RLHF (Ouyang et al. 2022, Sec. 3.5).

    1. sample completions from the current policy and score them                -> rollout_phase
    2. old log-probs, reference log-probs and old values, without gradient       -> ppo_targets
    3. per-token rewards r_t = -beta * KL_t + [t last] * score (KL placement)    -> ppo_targets
    4. GAE advantages and returns (gamma, lambda), whitened over the global batch -> ppo_targets
    5. mu passes: clipped policy loss - entropy bonus + vf_coef * clipped value loss -> update(ppo_loss)

The formulas come from `grpo.algo`'s registries, looked up by the configured names, so this module
never branches on a variant name. Paper: Schulman et al. 2017, "Proximal Policy Optimization
Algorithms"; GAE: Schulman et al. 2016.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from grpo import dist
from grpo.algo import (
    KL_PLACEMENTS,
    LOSS_AGGREGATIONS,
    POLICY_LOSSES,
    RATIO_LEVELS,
    LossNormalizer,
    clipped_value_loss,
    gae_advantages_and_returns,
    masked_kl,
    masked_mean,
    ppo_token_rewards,
)
from grpo.algo.masked import masked_moments, whiten_with_moments
from grpo.models.value_head import ValueModel
from grpo.rollout import RolloutBatch
from grpo.tasks.api import Example
from grpo.trainers.accumulate import MicroBatchLoss, update_on_rollouts
from grpo.trainers.logprob_passes import Stats, policy_logprobs, reference_logprobs, row_slices, rows_logprobs
from grpo.trainers.rollout_phase import rollout_phase
from grpo.trainers.scored import prompt_texts, sample_records
from grpo.trainers.state import TrainState


@dataclass(frozen=True)
class PPOTargets:
    """Per-token constants of one batch, all (N, T): old log-probs, reference log-probs (None when
    beta = 0), old values, advantages and returns."""

    batch: RolloutBatch
    old: torch.Tensor
    ref: torch.Tensor | None
    old_values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor


@torch.no_grad()
def critic_values(state: TrainState, critic: ValueModel, batch: RolloutBatch) -> torch.Tensor:
    """(N, T) values of every completion token, without gradient, 0 on padding."""
    input_ids, attention_mask = batch.sequences()
    T, parts = batch.completion_ids.shape[1], []
    with state.autocast():
        for rows, real in row_slices(batch.num_completions, state.config.optim.micro_batch_size):
            values = critic(input_ids[rows], attention_mask[rows], T)
            if real:
                parts.append(values)
    return torch.cat(parts) * batch.completion_mask


def ppo_targets(state: TrainState, batch: RolloutBatch, scores: torch.Tensor) -> tuple[PPOTargets, Stats]:
    """Old/ref log-probs and values, per-token rewards with the KL folded in, GAE, global whitening."""
    config, mask = state.config, batch.completion_mask
    old = policy_logprobs(state, state.policy, batch, config.rollout.temperature)
    ref = reference_logprobs(state, batch, config.rollout.temperature)
    old_values = critic_values(state, state.critic, batch)
    kl = masked_kl(config.algo.kl_estimator, old, ref, mask) if ref is not None else torch.zeros_like(old)
    weight = KL_PLACEMENTS.get(config.kl_placement)(config.algo.beta).in_reward
    rewards = ppo_token_rewards(scores, kl, mask, weight)  # (N, T)
    advantages, returns = gae_advantages_and_returns(rewards, old_values, mask, config.ppo.gamma, config.ppo.lam)
    if config.ppo.whiten_advantages:  # over the global batch: moments are summed over ranks
        advantages = whiten_with_moments(advantages, mask, dist.all_reduce_sum(masked_moments(advantages, mask)))
    stats: Stats = {"rollout_kl": masked_mean(kl, mask), "returns_mean": masked_mean(returns, mask),
                    "advantage_std": masked_mean(advantages**2, mask).sqrt()}
    return PPOTargets(batch, old, ref, old_values, advantages, returns), stats


def ppo_loss(state: TrainState, targets: PPOTargets, rows: slice, norm: LossNormalizer) -> MicroBatchLoss:
    """Clipped policy loss - entropy bonus (+ beta * KL when placed in the loss) + vf_coef * value loss."""
    config, batch = state.config, targets.batch
    algo, mask = config.algo, batch.completion_mask[rows]  # (n, T)
    logprobs, entropy = rows_logprobs(state.policy, batch, rows, config.rollout.temperature,
                                      entropy_grad=algo.entropy_coef > 0)
    log_ratio = RATIO_LEVELS.get(algo.ratio_level)(logprobs, targets.old[rows], mask)
    policy = POLICY_LOSSES.get(algo.policy_loss)(
        log_ratio, targets.advantages[rows], mask, algo.eps_low, algo.clip_high, algo.dual_clip
    )
    per_token = policy.per_token_loss - algo.entropy_coef * entropy
    if targets.ref is not None:
        kl = masked_kl(algo.kl_estimator, logprobs, targets.ref[rows], mask)
        per_token = per_token + KL_PLACEMENTS.get(config.kl_placement)(algo.beta).in_loss * kl
    input_ids, attention_mask = batch.sequences()
    values = state.critic(input_ids[rows], attention_mask[rows], mask.shape[1])  # (n, T)
    value_loss, value_stats = clipped_value_loss(
        values, targets.old_values[rows], targets.returns[rows], mask, config.ppo.value_clip
    )
    aggregate = LOSS_AGGREGATIONS.get(algo.loss_aggregation)
    policy_part, value_part = aggregate(per_token, mask, norm), aggregate(value_loss, mask, norm)
    means: Stats = {"entropy": masked_mean(entropy.detach(), mask), "clip_fraction": policy.stats.clip_fraction,
                    "ratio_mean": policy.stats.ratio_mean, "value_clip_fraction": value_stats.clip_fraction,
                    "value_mean": value_stats.value_mean}
    sums: Stats = {"policy_loss": policy_part.detach(), "value_loss": value_part.detach()}
    return MicroBatchLoss(policy_part + config.ppo.vf_coef * value_part, means, sums)


def ppo_update(state: TrainState, targets: PPOTargets) -> Stats:
    """One of the mu passes: gradients of the global policy and value losses, then one update."""
    return update_on_rollouts(state, targets.batch, lambda rows, norm: ppo_loss(state, targets, rows, norm))


def ppo_step(state: TrainState, examples: list[Example]) -> tuple[Stats, list[dict[str, object]]]:
    """One PPO iteration over this rank's prompts; returns detached stats and a few sample records."""
    scored, stats = rollout_phase(state, examples)
    targets, target_stats = ppo_targets(state, scored.batch, scored.rewards)
    stats.update(target_stats)
    for _ in range(state.config.algo.mu):
        stats.update(ppo_update(state, targets))
    per_completion = masked_mean(targets.advantages, scored.batch.completion_mask, dim=1)  # (N,)
    return stats, sample_records(scored, prompt_texts(state.tokenizer, scored.batch), per_completion)
