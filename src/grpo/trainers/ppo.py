"""One PPO step with a learned critic, as in InstructGPT-style RLHF (Ouyang et al. 2022, Sec. 3.5).

    1. sample completions from the current policy (G per prompt, like GRPO)      -> sample_rollouts
    2. score them with the verifiable reward                                     -> score_rollouts
    3. old log-probs, reference log-probs and old values, without gradient       -> ppo_targets
    4. per-token rewards r_t = -beta * KL_t + [t last] * score (KL placement)    -> ppo_token_rewards
    5. GAE advantages and returns (gamma, lambda), whitened over the batch       -> ppo_targets
    6. mu passes: clipped policy loss - entropy bonus + vf_coef * clipped value loss -> ppo_pass

Sampling and scoring are GRPO's phases (`grpo.trainers.grpo`); the formulas come from `grpo.algo`'s
registries, looked up by the configured names, so this module never branches on a variant name.
Paper: Schulman et al. 2017, "Proximal Policy Optimization Algorithms"; GAE: Schulman et al. 2016.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace

import torch

from grpo.algo import (
    KL_ESTIMATORS,
    KL_PLACEMENTS,
    LOSS_AGGREGATIONS,
    POLICY_LOSSES,
    RATIO_LEVELS,
    LossNormalizer,
    clipped_value_loss,
    gae_advantages_and_returns,
    masked_mean,
    masked_whiten,
    ppo_token_rewards,
)
from grpo.config import RunConfig
from grpo.models.logprobs import completion_logprobs
from grpo.models.value_head import ValueModel, build_value_model, critic_owns_backbone
from grpo.rewards.guard import RewardGuard
from grpo.rollout import RolloutBatch
from grpo.tasks.api import Example
from grpo.trainers.data import PromptStream
from grpo.trainers.grpo import (
    GRPOContext,
    Stats,
    _micro_batches,
    policy_logprobs,
    reference_logprobs,
    rollout_stats,
    sample_rollouts,
    score_rollouts,
)
from grpo.trainers.method import MethodRun, Rewards, count_models, grpo_context, sample_records
from grpo.trainers.optim import apply_update, build_optimizer
from grpo.trainers.setup import Models


@dataclass
class PPOContext:
    """GRPO's context (policy, reference, sampler, reward, optimiser over policy and critic) plus the critic."""

    core: GRPOContext
    critic: ValueModel
    parameters: list[torch.nn.Parameter]  # everything the optimiser updates, each once


@dataclass(frozen=True)
class PPOTargets:
    """Per-token constants of one batch, all (N, T): old log-probs, reference log-probs, old values,
    advantages and returns (`ref` is None when beta = 0)."""

    old: torch.Tensor
    ref: torch.Tensor | None
    old_values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor


@torch.no_grad()
def critic_values(critic: ValueModel, batch: RolloutBatch, size: int) -> torch.Tensor:
    """(N, T) values of every completion token, without gradient, 0 on padding."""
    input_ids, attention_mask = batch.sequences()
    T = batch.completion_ids.shape[1]
    parts = [critic(input_ids[rows], attention_mask[rows], T) for rows in _micro_batches(batch.num_completions, size)]
    return torch.cat(parts) * batch.completion_mask


def ppo_targets(ctx: PPOContext, batch: RolloutBatch, scores: torch.Tensor) -> tuple[PPOTargets, Stats]:
    """Phases 3-5: old/ref log-probs and values, per-token rewards with the KL folded in, GAE."""
    config = ctx.core.config
    size, mask = config.optim.micro_batch_size, batch.completion_mask
    old = policy_logprobs(ctx.core.policy, batch, config.rollout.temperature, size)
    ref = reference_logprobs(ctx.core, batch)
    old_values = critic_values(ctx.critic, batch, size)
    kl = KL_ESTIMATORS.get(config.algo.kl_estimator)(old, ref) if ref is not None else torch.zeros_like(old)
    weight = KL_PLACEMENTS.get(config.kl_placement)(config.algo.beta).in_reward
    rewards = ppo_token_rewards(scores, kl, mask, weight)  # (N, T)
    advantages, returns = gae_advantages_and_returns(rewards, old_values, mask, config.ppo.gamma, config.ppo.lam)
    if config.ppo.whiten_advantages:
        advantages = masked_whiten(advantages, mask)
    stats: Stats = {"rollout_kl": masked_mean(kl, mask), "returns_mean": masked_mean(returns, mask),
                    "advantage_std": masked_mean(advantages**2, mask).sqrt()}
    return PPOTargets(old, ref, old_values, advantages, returns), stats


def _micro_batch_loss(
    ctx: PPOContext, batch: RolloutBatch, targets: PPOTargets, rows: slice, norm: LossNormalizer
) -> tuple[torch.Tensor, Stats]:
    """Clipped policy loss - entropy bonus (+ beta * KL when placed in the loss) + vf_coef * value loss."""
    config = ctx.core.config
    algo, input_ids, attention_mask = config.algo, *batch.sequences()
    mask = batch.completion_mask[rows]  # (n, T)
    T = mask.shape[1]
    logprobs, entropy = completion_logprobs(ctx.core.train_model, input_ids[rows], attention_mask[rows], T,
                                            config.rollout.temperature, entropy_grad=algo.entropy_coef > 0)
    log_ratio = RATIO_LEVELS.get(algo.ratio_level)(logprobs, targets.old[rows], mask)
    policy = POLICY_LOSSES.get(algo.policy_loss)(
        log_ratio, targets.advantages[rows], mask, algo.eps_low, algo.clip_high, algo.dual_clip
    )
    per_token = policy.per_token_loss - algo.entropy_coef * entropy
    if targets.ref is not None:
        kl = KL_ESTIMATORS.get(algo.kl_estimator)(logprobs, targets.ref[rows])
        per_token = per_token + KL_PLACEMENTS.get(config.kl_placement)(algo.beta).in_loss * kl
    values = ctx.critic(input_ids[rows], attention_mask[rows], T)  # (n, T)
    value_loss, value_stats = clipped_value_loss(
        values, targets.old_values[rows], targets.returns[rows], mask, config.ppo.value_clip
    )
    aggregate = LOSS_AGGREGATIONS.get(algo.loss_aggregation)
    policy_part, value_part = aggregate(per_token, mask, norm), aggregate(value_loss, mask, norm)
    stats: Stats = {
        "policy_loss": policy_part.detach(), "value_loss": value_part.detach(),
        "entropy": masked_mean(entropy.detach(), mask), "clip_fraction": policy.stats.clip_fraction,
        "ratio_mean": policy.stats.ratio_mean, "value_clip_fraction": value_stats.clip_fraction,
        "value_mean": value_stats.value_mean,
    }
    return policy_part + config.ppo.vf_coef * value_part, stats


def ppo_pass(ctx: PPOContext, batch: RolloutBatch, targets: PPOTargets) -> Stats:
    """One of mu passes: accumulate the policy and value gradients over micro-batches, then one update."""
    config = ctx.core.config
    norm = LossNormalizer(batch.num_completions, int(batch.completion_mask.sum()), config.rollout.max_new_tokens)
    slices = list(_micro_batches(batch.num_completions, config.optim.micro_batch_size))
    totals: Stats = {}
    for index, rows in enumerate(slices):
        syncing = index == len(slices) - 1 or not hasattr(ctx.core.train_model, "no_sync")
        with contextlib.nullcontext() if syncing else ctx.core.train_model.no_sync():
            loss, stats = _micro_batch_loss(ctx, batch, targets, rows, norm)
            loss.backward()
        weight = (rows.stop - rows.start) / batch.num_completions
        totals["loss"] = totals.get("loss", 0.0) + loss.detach()
        for key, value in stats.items():
            additive = key in ("policy_loss", "value_loss")  # aggregates are already global sums
            totals[key] = totals.get(key, 0.0) + value.detach() * (1.0 if additive else weight)
    totals.update(apply_update(ctx.core.optim, ctx.parameters, config.optim.max_grad_norm))
    return totals


def ppo_step(ctx: PPOContext, examples: list[Example]) -> tuple[Stats, torch.Tensor, object]:
    """One PPO iteration: returns detached stats, the per-completion mean advantage and the scored rollouts."""
    batch = sample_rollouts(ctx.core, examples)
    scored = score_rollouts(ctx.core, batch, examples)
    targets, stats = ppo_targets(ctx, batch, scored.rewards)
    stats.update(rollout_stats(scored))
    for _ in range(ctx.core.config.algo.mu):
        stats.update(ppo_pass(ctx, batch, targets))
    per_completion = masked_mean(targets.advantages, batch.completion_mask, dim=1)  # (N,)
    return stats, per_completion, scored


def build_ppo(
    config: RunConfig, models: Models, rewards: Rewards, stream: PromptStream, guard: RewardGuard | None = None
) -> MethodRun:
    """PPO with the critic chosen by `ppo.critic`; one AdamW updates the policy and the critic."""
    core = grpo_context(config, models, rewards, stream, guard)
    critic = build_value_model(models.policy, config.ppo.critic)
    seen = {id(p) for p in models.policy.parameters()}
    parameters = [*models.policy.parameters(), *(p for p in critic.parameters() if id(p) not in seen)]
    ctx = PPOContext(replace(core, optim=build_optimizer(parameters, config.optim)), critic, parameters)

    def step(examples: list) -> tuple[dict, list]:
        stats, advantages, scored = ppo_step(ctx, examples)
        prompts = [example.prompt for example in examples]
        return stats, sample_records(replace(scored, advantages=advantages), prompts)

    extra = critic.backbone if critic_owns_backbone(critic, models.policy) else None
    return MethodRun(step, count_models(models.policy, models.reference, extra), ctx.core, {"critic": critic})
