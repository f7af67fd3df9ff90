"""One GRPO step, phase by phase as in DeepSeekMath's Algorithm 1 (Shao et al. 2024, section 4).

    1. sample G outputs o_i ~ pi_old(. | q) for each prompt q of the batch       -> rollout_phase
    2. compute the rewards r_i of each output with the rule-based reward         -> rollout_phase
    3. log-probs of the sampling (old) policy and the frozen reference            -> old_logprobs, reference_logprobs
    4. overlong handling and a KL subtracted from the reward reshape r_i          -> shape_rewards
    5. A_i = (r_i - mean(r)) / std(r) for every token of o_i, once per step        -> advantages_of
    6. for mu iterations, maximise the clipped objective minus beta * KL           -> update(grpo_loss)
       (weighted by the sampler/trainer importance correction, `algo.rollout_correction`)

The formulas live in `grpo.algo` and are looked up by name in its registries; this module only
moves tensors between them, so it never branches on a variant name.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from grpo.algo import (
    KL_PLACEMENTS,
    LOSS_AGGREGATIONS,
    OVERLONG_POLICIES,
    POLICY_LOSSES,
    RATIO_LEVELS,
    LossNormalizer,
    kl_penalized_rewards,
    masked_kl,
    masked_mean,
)
from grpo.rollout import RolloutBatch
from grpo.rollout.sampler import rollout_correction
from grpo.tasks.api import Example
from grpo.trainers.accumulate import MicroBatchLoss, update_on_rollouts
from grpo.trainers.logprob_passes import Stats, policy_logprobs, reference_logprobs, rows_logprobs
from grpo.trainers.rollout_phase import rollout_phase
from grpo.trainers.scored import Scored, advantages_of, prompt_texts, sample_records
from grpo.trainers.state import TrainState


@dataclass(frozen=True)
class GRPOBatch:
    """What the mu passes train on: rollouts (completion mask = loss mask), (N,) advantages, the
    (N, T) old and reference log-probs (None: pi_old is the policy itself / no reference), and the
    (N,) rewards and validity the advantages came from (for `grpo explain`)."""

    batch: RolloutBatch
    advantages: torch.Tensor
    old: torch.Tensor | None
    ref: torch.Tensor | None
    rewards: torch.Tensor | None = None
    valid: torch.Tensor | None = None


def old_logprobs(state: TrainState, batch: RolloutBatch) -> torch.Tensor | None:
    """pi_old's log-probs, needed only when mu > 1 (with mu = 1, pi_old is pi_theta and the ratio is 1).

    Recomputed through the trainer's forward path rather than taken from the sampler: the sampler's
    KV-cache log-probs agree only to about 1e-5, and the first of the mu passes must see a ratio of
    exactly 1.
    """
    if state.config.algo.mu == 1:
        return None
    return policy_logprobs(state, state.policy, batch, state.config.rollout.temperature)


def shape_rewards(state: TrainState, scored: Scored, old: torch.Tensor | None,
                  ref: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(N,) rewards and (N, T) loss mask after overlong handling and a KL placed in the reward.

    With `overlong: mask` truncated rows leave the loss through the mask; with `kl_placement: reward`
    the KL of the sampled tokens (at the sampling policy, a constant) is subtracted from each reward.
    """
    algo, batch, config = state.config.algo, scored.batch, state.config
    overlong = OVERLONG_POLICIES.get(algo.overlong)(
        scored.rewards, batch.completion_mask, batch.completion_lengths, batch.truncated,
        config.rollout.max_new_tokens, algo.overlong_buffer, algo.overlong_penalty,
    )
    weight = KL_PLACEMENTS.get(config.kl_placement)(algo.beta).in_reward
    if not weight or ref is None:
        return overlong.rewards, overlong.loss_mask
    sampling = old if old is not None else policy_logprobs(state, state.policy, batch, config.rollout.temperature)
    kl = masked_kl(algo.kl_estimator, sampling, ref, batch.completion_mask)
    return kl_penalized_rewards(overlong.rewards, kl, batch.completion_mask, weight), overlong.loss_mask


def grpo_loss(state: TrainState, data: GRPOBatch, rows: slice, norm: LossNormalizer) -> MicroBatchLoss:
    """Rows `rows`: clipped surrogate (+ beta * KL in the loss, - entropy bonus), aggregated globally."""
    algo, config = state.config.algo, state.config
    mask = data.batch.completion_mask[rows]  # (n, T)
    logprobs, entropy = rows_logprobs(state.policy, data.batch, rows, config.rollout.temperature,
                                      entropy_grad=algo.entropy_coef > 0)
    old = logprobs.detach() if data.old is None else data.old[rows]  # ratio exactly 1 when mu == 1
    correction, correction_stats = rollout_correction(algo, old, data.batch.sampler_logprobs[rows], mask)
    mask = correction.loss_mask  # the completion mask itself unless masked IS drops tokens
    log_ratio = RATIO_LEVELS.get(algo.ratio_level)(logprobs, old, mask)
    policy = POLICY_LOSSES.get(algo.policy_loss)(
        log_ratio, data.advantages[rows], mask, algo.eps_low, algo.clip_high, algo.dual_clip
    )
    per_token = correction.weights * policy.per_token_loss - algo.entropy_coef * entropy
    means: Stats = {"entropy": masked_mean(entropy.detach(), mask), "clip_fraction": policy.stats.clip_fraction,
                    "ratio_mean": policy.stats.ratio_mean, **correction_stats}
    if data.ref is not None:
        kl = masked_kl(algo.kl_estimator, logprobs, data.ref[rows], mask)
        per_token = per_token + KL_PLACEMENTS.get(config.kl_placement)(algo.beta).in_loss * kl
        means["kl"] = masked_mean(kl.detach(), mask)
    loss = LOSS_AGGREGATIONS.get(algo.loss_aggregation)(per_token, mask, norm)
    if state.explain is not None:  # `grpo explain` records this pass's inputs on its logged steps
        state.explain.capture(state, data, rows, logprobs, old, data.ref, entropy, per_token, norm)
    return MicroBatchLoss(loss, means)


def grpo_update(state: TrainState, data: GRPOBatch) -> Stats:
    """One of the mu passes: gradients of the global GRPO loss, then one optimiser update."""
    return update_on_rollouts(state, data.batch, lambda rows, norm: grpo_loss(state, data, rows, norm))


def grpo_step(state: TrainState, examples: list[Example]) -> tuple[Stats, list[dict[str, object]]]:
    """One GRPO iteration over this rank's prompts; returns detached stats and a few sample records."""
    scored, stats = rollout_phase(state, examples)
    batch, temperature = scored.batch, state.config.rollout.temperature
    old = old_logprobs(state, batch)
    ref = reference_logprobs(state, batch, temperature)
    rewards, loss_mask = shape_rewards(state, scored, old, ref)
    advantages = advantages_of(state.config.algo, rewards, scored.valid, batch.group_size)
    data = GRPOBatch(replace(batch, completion_mask=loss_mask), advantages, old, ref, rewards, scored.valid)
    for _ in range(state.config.algo.mu):
        stats.update(grpo_update(state, data))
    return stats, sample_records(scored, prompt_texts(state.tokenizer, batch), advantages)
