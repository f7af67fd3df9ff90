"""One GRPO step, phase by phase as in DeepSeekMath's Algorithm 1 (Shao et al. 2024, section 4).

    1. sample G outputs o_i ~ pi_old(. | q) for each prompt q of the batch      -> sample_rollouts
    2. compute the rewards r_i of each output with the rule-based reward        -> score_rollouts
    3. A_i = (r_i - mean(r)) / std(r) for every token of o_i                     -> score_rollouts
       (DAPO dynamic sampling redraws until every group carries signal)          -> draw_informative
    4. log-probs of the sampling (old) policy and the frozen reference           -> old_/reference_logprobs
       (overlong handling and a KL subtracted from the reward reshape r_i)       -> shape_rewards
    5. for mu iterations, maximise the clipped objective minus beta * KL          -> optimisation_pass

The formulas live in `grpo.algo` and are looked up by name in its registries; this module only
moves tensors between them, so it never branches on a variant name.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from grpo.algo import (
    ADVANTAGE_ESTIMATORS,
    KL_ESTIMATORS,
    KL_PLACEMENTS,
    LOSS_AGGREGATIONS,
    OVERLONG_POLICIES,
    POLICY_LOSSES,
    RATIO_LEVELS,
    AdvantageInputs,
    LossNormalizer,
    informative_groups,
    kl_penalized_rewards,
    masked_mean,
)
from grpo.config.schema import RunConfig
from grpo.models.logprobs import completion_logprobs, grouped_completion_logprobs
from grpo.rewards import exact_answer
from grpo.rewards.combine import WeightedReward, score_weighted, single
from grpo.rewards.guard import RewardGuard
from grpo.rollout import RolloutBatch, SamplingParams, generate
from grpo.rollout.types import concat_rollouts
from grpo.tasks.api import Example, reward_columns
from grpo.trainers.explain_log import ExplainCapture
from grpo.trainers.optim import OptimState, apply_update

Stats = dict[str, torch.Tensor]


@dataclass
class GRPOContext:
    """Everything a GRPO step touches: models, tokenizer, optimiser, config and the sampler's RNG.

    `train_model` is the module the loss is computed through (the DDP wrapper when several ranks
    run); `policy` is the plain model used for generation. Each of `rewards` follows the contract of
    `grpo.rewards.api` and receives the task's `answer` column and the example's other columns.
    With `adapter_reference` (LoRA), the reference policy is `policy` with its adapter disabled.
    `autocast` makes the context every forward pass runs in (mixed precision, or nothing).
    `reward_guard` isolates reward failures. `check_logprobs` asks the next step to compare trainer
    and sampler log-probs (the first step only). `more_prompts` supplies further prompts to dynamic
    sampling (without it, the step's own prompts are sampled again).
    """

    policy: PreTrainedModel
    train_model: torch.nn.Module
    reference: PreTrainedModel | None
    tokenizer: PreTrainedTokenizerBase
    optim: OptimState
    config: RunConfig
    generator: torch.Generator
    rewards: list[WeightedReward] = field(default_factory=lambda: single(exact_answer))
    reward_guard: RewardGuard = field(default_factory=RewardGuard)
    check_logprobs: bool = True
    more_prompts: Callable[[], list[Example]] | None = None
    adapter_reference: bool = False
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    explain: ExplainCapture | None = None  # records one step's loss inputs for `grpo explain` when armed


@dataclass(frozen=True)
class Scored:
    """Rollouts with their rewards and advantages; N = B*G rows, prompt-major."""

    batch: RolloutBatch
    texts: list[str]  # N decoded completions
    rewards: torch.Tensor  # (N,) float32, the weighted total
    valid: torch.Tensor  # (N,) bool
    advantages: torch.Tensor  # (N,) float32
    components: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> (N,) each function's scores
    component_valid: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> (N,) bool


def sample_rollouts(ctx: GRPOContext, examples: list[Example]) -> RolloutBatch:
    """Phase 1: G completions per prompt from the current policy, with the KV-cache engine."""
    rollout = ctx.config.rollout
    params = SamplingParams(rollout.temperature, rollout.top_k, rollout.top_p, rollout.max_new_tokens)
    prompts = [ctx.tokenizer(example.prompt)["input_ids"] for example in examples]
    with ctx.autocast():
        return generate(
            ctx.policy,
            prompts,
            group_size=rollout.group_size,
            params=params,
            eos_token_id=ctx.tokenizer.eos_token_id,
            pad_token_id=ctx.tokenizer.pad_token_id,
            generator=ctx.generator,
            compile=rollout.compile,
        )


def score_rollouts(ctx: GRPOContext, batch: RolloutBatch, examples: list[Example]) -> Scored:
    """Phases 2 and 3: rule-based rewards (weighted sum of the run's functions), then advantages."""
    texts = ctx.tokenizer.batch_decode(batch.completion_ids, skip_special_tokens=True)
    scored = score_weighted(ctx.rewards, texts, reward_columns(examples, batch.group_size), ctx.reward_guard)
    device = batch.completion_ids.device
    rewards, valid = scored.total.to(device), scored.valid.to(device)
    return Scored(batch, texts, rewards, valid, group_advantages(ctx, rewards, valid, batch.group_size),
                  scored.components, scored.component_valid)


def _micro_batches(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


@torch.no_grad()
def policy_logprobs(model: torch.nn.Module, batch: RolloutBatch, temperature: float, size: int) -> torch.Tensor:
    """(N, T) log-probs of the sampled tokens under `model`, without gradient, in micro-batches."""
    parts = [rows_logprobs(model, batch, rows, temperature)[0] for rows in _micro_batches(batch.num_completions, size)]
    return torch.cat(parts) * batch.completion_mask


def rows_logprobs(
    model: torch.nn.Module, batch: RolloutBatch, rows: slice, temperature: float, entropy_grad: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, T) log-probs and entropies of rows `rows`, each prompt forwarded once per group.

    An entropy bonus needs the entropy's gradient, which only the plain full-logits path keeps.
    """
    if entropy_grad:
        input_ids, attention_mask = batch.sequences()
        T = batch.completion_ids.shape[1]
        return completion_logprobs(model, input_ids[rows], attention_mask[rows], T, temperature, entropy_grad=True)
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

    They are recomputed through the trainer's own forward path rather than taken from the sampler:
    the sampler's KV-cache log-probs agree only to about 1e-5 (tests/models/test_logprobs.py), and
    the first of the mu passes must see a ratio of exactly 1.
    """
    if ctx.config.algo.mu == 1:
        return None
    with ctx.autocast():
        return policy_logprobs(ctx.policy, batch, ctx.config.rollout.temperature, ctx.config.optim.micro_batch_size)


def reference_logprobs(ctx: GRPOContext, batch: RolloutBatch) -> torch.Tensor | None:
    """Phase 4b: the frozen reference policy's log-probs; skipped entirely when beta = 0.

    With LoRA the reference is the base model: the policy with its adapter switched off.
    """
    temperature, size = ctx.config.rollout.temperature, ctx.config.optim.micro_batch_size
    if ctx.adapter_reference:
        with ctx.autocast(), ctx.policy.disable_adapter():
            return policy_logprobs(ctx.policy, batch, temperature, size)
    if ctx.reference is None:
        return None
    with ctx.autocast():
        return policy_logprobs(ctx.reference, batch, temperature, size)


def _micro_batch_loss(
    ctx: GRPOContext, scored: Scored, rows: slice, old: torch.Tensor | None, ref: torch.Tensor | None,
    norm: LossNormalizer,
) -> tuple[torch.Tensor, Stats]:
    """Loss of rows `rows`: clipped surrogate + beta * KL, aggregated with the batch normaliser."""
    algo, batch = ctx.config.algo, scored.batch
    mask = batch.completion_mask[rows]  # (n, T)
    with ctx.autocast():
        logprobs, entropy = rows_logprobs(
            ctx.train_model, batch, rows, ctx.config.rollout.temperature, entropy_grad=algo.entropy_coef > 0
        )
    old_logprobs = logprobs.detach() if old is None else old[rows]  # ratio exactly 1 when mu == 1
    log_ratio = RATIO_LEVELS.get(algo.ratio_level)(logprobs, old_logprobs, mask)
    policy = POLICY_LOSSES.get(algo.policy_loss)(
        log_ratio, scored.advantages[rows], mask, algo.eps_low, algo.clip_high, algo.dual_clip
    )
    per_token_loss = policy.per_token_loss - algo.entropy_coef * entropy  # entropy bonus
    stats: Stats = {"entropy": masked_mean(entropy.detach(), mask)}
    if ref is not None:
        kl = KL_ESTIMATORS.get(algo.kl_estimator)(logprobs, ref[rows])
        per_token_loss = per_token_loss + KL_PLACEMENTS.get(ctx.config.kl_placement)(algo.beta).in_loss * kl
        stats["kl"] = masked_mean(kl.detach(), mask)
    loss = LOSS_AGGREGATIONS.get(algo.loss_aggregation)(per_token_loss, mask, norm)
    if ctx.explain is not None:
        ctx.explain.capture(ctx, scored, rows, logprobs, old_logprobs, ref, entropy, per_token_loss, norm)
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
    finite = bool(torch.isfinite(totals["loss"]))  # a NaN/inf loss must not reach the weights
    totals.update(apply_update(ctx.optim, ctx.policy.parameters(), ctx.config.optim.max_grad_norm, finite))
    return totals


def group_advantages(ctx: GRPOContext, rewards: torch.Tensor, valid: torch.Tensor, group_size: int) -> torch.Tensor:
    """(N,) advantages of `rewards` (N,) with the configured estimator, on the rewards' device."""
    algo = ctx.config.algo
    inputs = AdvantageInputs(rewards.cpu(), valid.cpu(), group_size, std=algo.std, eps=algo.advantage_eps)
    return ADVANTAGE_ESTIMATORS.get(algo.advantage)(inputs).to(rewards.device)


def _keep_groups(scored: Scored, keep: torch.Tensor) -> Scored:
    """The groups of `scored` where `keep` (B,) is True; advantages are left for the caller to recompute."""
    rows = keep.cpu().repeat_interleave(scored.batch.group_size)  # (N,) bool
    texts = [text for text, kept in zip(scored.texts, rows.tolist()) if kept]
    rows = rows.to(scored.rewards.device)
    return Scored(scored.batch.select_groups(keep), texts, scored.rewards[rows], scored.valid[rows],
                  scored.advantages[rows], {name: v[rows] for name, v in scored.components.items()},
                  {name: v[rows] for name, v in scored.component_valid.items()})


def draw_informative(ctx: GRPOContext, examples: list[Example]) -> tuple[Scored, Stats]:
    """Phases 1-3 with DAPO dynamic sampling: keep only groups whose rewards differ, drawing more.

    Draws batches of prompts until B informative groups are gathered or `algo.max_draws` batches
    have been drawn, then trains on what it has (the last draw, unfiltered, if nothing had signal).
    Advantages are recomputed over the gathered batch, since batch-level estimators depend on it.
    Paper: Yu et al. 2025, "DAPO" (arXiv:2503.14476), Sec. 3.2.
    """
    B, G = len(examples), ctx.config.rollout.group_size
    parts: list[Scored] = []
    have, drawn = 0, 0
    for draw in range(1, ctx.config.algo.max_draws + 1):
        scored = score_rollouts(ctx, sample_rollouts(ctx, examples), examples)
        keep = informative_groups(scored.rewards, scored.valid, G)  # (B,)
        keep &= torch.cumsum(keep.long(), 0) <= B - have  # no more groups than the batch still needs
        parts.append(_keep_groups(scored, keep))
        have, drawn = have + int(keep.sum()), draw
        if have == B or draw == ctx.config.algo.max_draws:
            break
        examples = ctx.more_prompts() if ctx.more_prompts is not None else examples
    stats: Stats = {"sampling_draws": torch.tensor(float(drawn)), "informative_groups": torch.tensor(float(have))}
    if have == 0:
        return scored, stats
    parts = [part for part in parts if part.batch.num_completions]
    batch = concat_rollouts([part.batch for part in parts], ctx.tokenizer.pad_token_id)
    rewards, valid = torch.cat([p.rewards for p in parts]), torch.cat([p.valid for p in parts])
    texts = [text for part in parts for text in part.texts]
    gather = lambda field: {name: torch.cat([getattr(p, field)[name] for p in parts]) for name in parts[0].components}
    return Scored(batch, texts, rewards, valid, group_advantages(ctx, rewards, valid, G),
                  gather("components"), gather("component_valid")), stats


def shape_rewards(
    ctx: GRPOContext, scored: Scored, old: torch.Tensor | None, ref: torch.Tensor | None
) -> Scored:
    """Phase 3b: overlong handling and a KL subtracted from the reward; advantages follow the new rewards.

    With `overlong: mask` the truncated rows leave the loss through their completion mask. With
    `kl_placement: reward` the KL of the sampled tokens (at the sampling policy) is subtracted from
    each reward. With neither, `scored` is returned unchanged.
    """
    algo, batch = ctx.config.algo, scored.batch
    overlong = OVERLONG_POLICIES.get(algo.overlong)(
        scored.rewards, batch.completion_mask, batch.completion_lengths, batch.truncated,
        ctx.config.rollout.max_new_tokens, algo.overlong_buffer, algo.overlong_penalty,
    )
    rewards, weight = overlong.rewards, KL_PLACEMENTS.get(ctx.config.kl_placement)(algo.beta).in_reward
    if weight and ref is not None:
        size, temperature = ctx.config.optim.micro_batch_size, ctx.config.rollout.temperature
        sampling = old if old is not None else policy_logprobs(ctx.policy, batch, temperature, size)
        kl = KL_ESTIMATORS.get(algo.kl_estimator)(sampling, ref)
        rewards = kl_penalized_rewards(rewards, kl, batch.completion_mask, weight)
    if rewards is scored.rewards and overlong.loss_mask is batch.completion_mask:
        return scored
    advantages = group_advantages(ctx, rewards, scored.valid, batch.group_size)
    return replace(scored, batch=replace(batch, completion_mask=overlong.loss_mask), rewards=rewards,
                   advantages=advantages)


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
        **{f"reward/{name}": masked_mean(values, scored.component_valid[name].to(values.device))
           for name, values in scored.components.items()},
    }


def sampler_agreement(ctx: GRPOContext, batch: RolloutBatch) -> Stats:
    """How far the trainer's log-probs of the sampled tokens are from the sampler's (0 when they agree).

    Both should be the same distribution; a gap means importance ratios are off before any update
    (a dtype, temperature or padding mismatch between generation and training).
    """
    trainer = policy_logprobs(ctx.policy, batch, ctx.config.rollout.temperature, ctx.config.optim.micro_batch_size)
    gap = (trainer - batch.sampler_logprobs)[batch.completion_mask]  # (tokens,)
    if gap.numel() == 0:
        gap = torch.zeros(1)
    ratio = gap.exp()
    return {"logprob_gap_max": gap.abs().max(), "logprob_ratio_min": ratio.min(), "logprob_ratio_max": ratio.max()}


def grpo_step(ctx: GRPOContext, examples: list[Example]) -> tuple[Stats, Scored]:
    """One GRPO iteration over a batch of prompts; returns detached stats and the scored rollouts."""
    if ctx.config.algo.dynamic_sampling:
        scored, sampling = draw_informative(ctx, examples)
    else:
        scored, sampling = score_rollouts(ctx, sample_rollouts(ctx, examples), examples), {}
    old = old_policy_logprobs(ctx, scored.batch)
    ref = reference_logprobs(ctx, scored.batch)
    stats = {**rollout_stats(scored), **sampling}
    stats.update(ctx.reward_guard.pop_stats())
    if ctx.check_logprobs:
        ctx.check_logprobs = False
        stats.update(sampler_agreement(ctx, scored.batch))
    scored = shape_rewards(ctx, scored, old, ref)
    for _ in range(ctx.config.algo.mu):
        stats.update(optimisation_pass(ctx, scored, old, ref))
    return stats, scored
