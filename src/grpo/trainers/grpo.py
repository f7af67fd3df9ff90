"""One GRPO step, phase by phase as in DeepSeekMath's Algorithm 1 (Shao et al. 2024, section 4).

    1. sample G outputs o_i ~ pi_old(. | q) for each prompt q of the batch      -> sample_rollouts
    2. compute the rewards r_i of each output with the rule-based reward        -> score_rollouts
    3. A_i = (r_i - mean(r)) / std(r) for every token of o_i                     -> compute_advantages
    4. log-probs of the sampling (old) policy and the frozen reference           -> old_/reference_logprobs
    5. for mu iterations, maximise the clipped objective minus beta * KL          -> optimisation_pass

The formulas live in `grpo.algo` and are looked up by name in its registries; this module only
moves tensors between them, so it never branches on a variant name.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from grpo.algo import (
    ADVANTAGE_ESTIMATORS,
    KL_ESTIMATORS,
    LOSS_AGGREGATIONS,
    POLICY_LOSSES,
    RATIO_LEVELS,
    AdvantageInputs,
    LossNormalizer,
    masked_mean,
)
from grpo.config.schema import RunConfig
from grpo.models.logprobs import grouped_completion_logprobs
from grpo.rewards import exact_answer, score
from grpo.rollout import RolloutBatch, SamplingParams, generate
from grpo.tasks.api import Example
from grpo.trainers.optim import OptimState, apply_update

Stats = dict[str, torch.Tensor]


@dataclass
class GRPOContext:
    """Everything a GRPO step touches: models, tokenizer, optimiser, config and the sampler's RNG.

    `train_model` is the module the loss is computed through (the DDP wrapper when several ranks
    run); `policy` is the plain model used for generation. `reward_fn` follows the contract of
    `grpo.rewards.api` and receives the task's `answer` column.
    """

    policy: PreTrainedModel
    train_model: torch.nn.Module
    reference: PreTrainedModel | None
    tokenizer: PreTrainedTokenizerBase
    optim: OptimState
    config: RunConfig
    generator: torch.Generator
    reward_fn: Callable[..., list[float | None]] = field(default=exact_answer)


@dataclass(frozen=True)
class Scored:
    """Rollouts with their rewards and advantages; N = B*G rows, prompt-major."""

    batch: RolloutBatch
    texts: list[str]  # N decoded completions
    rewards: torch.Tensor  # (N,) float32
    valid: torch.Tensor  # (N,) bool
    advantages: torch.Tensor  # (N,) float32


def sample_rollouts(ctx: GRPOContext, examples: list[Example]) -> RolloutBatch:
    """Phase 1: G completions per prompt from the current policy, with the KV-cache engine."""
    rollout = ctx.config.rollout
    params = SamplingParams(rollout.temperature, rollout.top_k, rollout.top_p, rollout.max_new_tokens)
    prompts = [ctx.tokenizer(example.prompt)["input_ids"] for example in examples]
    return generate(
        ctx.policy,
        prompts,
        group_size=rollout.group_size,
        params=params,
        eos_token_id=ctx.tokenizer.eos_token_id,
        pad_token_id=ctx.tokenizer.pad_token_id,
        generator=ctx.generator,
    )


def score_rollouts(ctx: GRPOContext, batch: RolloutBatch, examples: list[Example]) -> Scored:
    """Phases 2 and 3: rule-based rewards, then group-relative advantages."""
    texts = ctx.tokenizer.batch_decode(batch.completion_ids, skip_special_tokens=True)
    answers = [example.answer for example in examples for _ in range(batch.group_size)]
    name = getattr(ctx.reward_fn, "__name__", "reward")
    rewards, valid = score(ctx.reward_fn, name, texts, {"answer": answers})
    algo = ctx.config.algo
    inputs = AdvantageInputs(rewards, valid, batch.group_size, std=algo.std, eps=algo.advantage_eps)
    advantages = ADVANTAGE_ESTIMATORS.get(algo.advantage)(inputs)
    device = batch.completion_ids.device
    return Scored(batch, texts, rewards.to(device), valid.to(device), advantages.to(device))


def _micro_batches(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


@torch.no_grad()
def policy_logprobs(model: torch.nn.Module, batch: RolloutBatch, temperature: float, size: int) -> torch.Tensor:
    """(N, T) log-probs of the sampled tokens under `model`, without gradient, in micro-batches."""
    parts = [rows_logprobs(model, batch, rows, temperature)[0] for rows in _micro_batches(batch.num_completions, size)]
    return torch.cat(parts) * batch.completion_mask


def rows_logprobs(
    model: torch.nn.Module, batch: RolloutBatch, rows: slice, temperature: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, T) log-probs and entropies of rows `rows`, each prompt forwarded once per group."""
    return grouped_completion_logprobs(
        model,
        batch.prompt_ids[rows],
        batch.prompt_mask[rows],
        batch.completion_ids[rows],
        batch.completion_mask[rows],
        batch.group_size,
        temperature,
    )


def old_policy_logprobs(ctx: GRPOContext, batch: RolloutBatch) -> torch.Tensor | None:
    """Phase 4a: pi_old's log-probs, needed only when mu > 1 (with mu = 1, pi_old is pi_theta).

    pi_old is the policy the rollouts were sampled from, and the sampler recorded the log-prob of
    each token under the same tempered, untruncated distribution the trainer uses, with the same
    weights (tests/models/test_logprobs.py checks the two agree to 1e-5), so no forward is needed.
    """
    if ctx.config.algo.mu == 1:
        return None
    return batch.sampler_logprobs * batch.completion_mask


def reference_logprobs(ctx: GRPOContext, batch: RolloutBatch) -> torch.Tensor | None:
    """Phase 4b: the frozen reference policy's log-probs; skipped entirely when beta = 0."""
    if ctx.reference is None:
        return None
    return policy_logprobs(ctx.reference, batch, ctx.config.rollout.temperature, ctx.config.optim.micro_batch_size)


def _micro_batch_loss(
    ctx: GRPOContext, scored: Scored, rows: slice, old: torch.Tensor | None, ref: torch.Tensor | None,
    norm: LossNormalizer,
) -> tuple[torch.Tensor, Stats]:
    """Loss of rows `rows`: clipped surrogate + beta * KL, aggregated with the batch normaliser."""
    algo, batch = ctx.config.algo, scored.batch
    mask = batch.completion_mask[rows]  # (n, T)
    logprobs, entropy = rows_logprobs(ctx.train_model, batch, rows, ctx.config.rollout.temperature)
    old_logprobs = logprobs.detach() if old is None else old[rows]  # ratio exactly 1 when mu == 1
    log_ratio = RATIO_LEVELS.get(algo.ratio_level)(logprobs, old_logprobs, mask)
    policy = POLICY_LOSSES.get(algo.policy_loss)(
        log_ratio, scored.advantages[rows], mask, algo.eps_low, algo.clip_high, algo.dual_clip
    )
    per_token_loss = policy.per_token_loss
    stats: Stats = {"entropy": masked_mean(entropy, mask)}
    if ref is not None:
        kl = KL_ESTIMATORS.get(algo.kl_estimator)(logprobs, ref[rows])
        per_token_loss = per_token_loss + algo.beta * kl
        stats["kl"] = masked_mean(kl.detach(), mask)
    loss = LOSS_AGGREGATIONS.get(algo.loss_aggregation)(per_token_loss, mask, norm)
    stats.update(clip_fraction=policy.stats.clip_fraction, ratio_mean=policy.stats.ratio_mean)
    return loss, stats


def optimisation_pass(ctx: GRPOContext, scored: Scored, old: torch.Tensor | None, ref: torch.Tensor | None) -> Stats:
    """Phase 5 (one of mu): accumulate gradients over micro-batches, then one optimiser update."""
    batch, size = scored.batch, ctx.config.optim.micro_batch_size
    norm = LossNormalizer(
        num_sequences=batch.num_completions,
        num_tokens=int(batch.completion_mask.sum()),
        max_completion_length=ctx.config.rollout.max_new_tokens,
    )
    slices = list(_micro_batches(batch.num_completions, size))
    totals: Stats = {}
    for index, rows in enumerate(slices):
        syncing = index == len(slices) - 1 or not hasattr(ctx.train_model, "no_sync")
        with contextlib.nullcontext() if syncing else ctx.train_model.no_sync():
            loss, stats = _micro_batch_loss(ctx, scored, rows, old, ref, norm)
            loss.backward()
        weight = (rows.stop - rows.start) / batch.num_completions
        totals["loss"] = totals.get("loss", 0.0) + loss.detach()
        for key, value in stats.items():
            totals[key] = totals.get(key, 0.0) + value.detach() * weight
    totals.update(apply_update(ctx.optim, ctx.policy.parameters(), ctx.config.optim.max_grad_norm))
    return totals


def rollout_stats(scored: Scored) -> Stats:
    """Reward and length statistics of a batch of rollouts (detached 0-d tensors)."""
    batch, G = scored.batch, scored.batch.group_size
    grouped = scored.rewards.view(-1, G)  # (B, G)
    lengths = batch.completion_lengths.float()
    return {
        "reward_mean": scored.rewards.mean(),
        "reward_std": scored.rewards.std() if scored.rewards.numel() > 1 else torch.zeros(()),
        "zero_std_groups": (grouped.amax(1) == grouped.amin(1)).float().mean(),
        "completion_length": lengths.mean(),
        "truncated_fraction": batch.truncated.float().mean(),
        "invalid_rewards": (~scored.valid).float().mean(),
    }


def grpo_step(ctx: GRPOContext, examples: list[Example]) -> tuple[Stats, Scored]:
    """One GRPO iteration over a batch of prompts; returns detached stats and the scored rollouts."""
    batch = sample_rollouts(ctx, examples)
    scored = score_rollouts(ctx, batch, examples)
    old = old_policy_logprobs(ctx, batch)
    ref = reference_logprobs(ctx, batch)
    stats = rollout_stats(scored)
    for _ in range(ctx.config.algo.mu):
        stats.update(optimisation_pass(ctx, scored, old, ref))
    return stats, scored
