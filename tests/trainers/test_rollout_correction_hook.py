"""algo.rollout_correction inside the GRPO loss: `none` gives today's loss bit for bit, the others act."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from grpo.algo import KL_ESTIMATORS, KL_PLACEMENTS, LOSS_AGGREGATIONS, POLICY_LOSSES, RATIO_LEVELS, LossNormalizer
from grpo.config import load_config
from grpo.models.load import frozen_copy, load_policy, load_tokenizer
from grpo.rewards.combine import single
from grpo.tasks.api import Example
from grpo.trainers import grpo as trainer
from grpo.trainers.grpo import GRPOContext, reference_logprobs, sample_rollouts, score_rollouts
from grpo.trainers.optim import build_optimizer

PROMPTS = [Example("1+2*3=", "7"), Example("(4-1)*2+7=", "13")]


def sevens(completions: list[str], **_: object) -> list[float]:
    return [float(text.count("7")) for text in completions]


def make_scored(model_dir: Path, overrides: list[str]) -> tuple:
    """(context, scored rollouts, reference log-probs) after one sampling phase."""
    config = load_config(overrides=["rollout.max_new_tokens=8", "rollout.group_size=4", *overrides])
    policy = load_policy(model_dir, "float32", torch.device("cpu"))
    ctx = GRPOContext(policy=policy, train_model=policy, reference=frozen_copy(policy), tokenizer=load_tokenizer(
        model_dir), optim=build_optimizer(policy.parameters(), config.optim), config=config,
        generator=torch.Generator().manual_seed(0), rewards=single(sevens))
    scored = score_rollouts(ctx, sample_rollouts(ctx, PROMPTS), PROMPTS)
    return ctx, scored, reference_logprobs(ctx, scored.batch)


def _norm(scored) -> LossNormalizer:
    batch = scored.batch
    return LossNormalizer(batch.num_completions, int(batch.completion_mask.sum()), 8)


def _loss(ctx, scored, ref) -> tuple[torch.Tensor, dict]:
    rows = slice(0, scored.batch.num_completions)
    return trainer._micro_batch_loss(ctx, scored, rows, None, ref, _norm(scored))


def test_none_is_bit_identical_to_the_loss_without_correction(tiny_model_dir: Path):
    ctx, scored, ref = make_scored(tiny_model_dir, [])
    loss, stats = _loss(ctx, scored, ref)
    # The loss as computed before the correction existed, phase by phase.
    algo, batch, rows = ctx.config.algo, scored.batch, slice(0, scored.batch.num_completions)
    logprobs, entropy = trainer.rows_logprobs(ctx.train_model, batch, rows, 1.0)
    mask = batch.completion_mask
    log_ratio = RATIO_LEVELS.get(algo.ratio_level)(logprobs, logprobs.detach(), mask)
    policy = POLICY_LOSSES.get(algo.policy_loss)(log_ratio, scored.advantages, mask, algo.eps_low, algo.clip_high,
                                                 algo.dual_clip)
    per_token = policy.per_token_loss - algo.entropy_coef * entropy
    per_token = per_token + KL_PLACEMENTS.get("loss")(algo.beta).in_loss * KL_ESTIMATORS.get("k3")(logprobs, ref)
    expected = LOSS_AGGREGATIONS.get(algo.loss_aggregation)(per_token, mask, _norm(scored))
    assert torch.equal(loss, expected)
    assert float(stats["sampler_kl_k3"]) < 1e-8 and float(stats["is_masked_share"]) == 0.0


def test_masked_drops_a_row_whose_sampler_logprobs_are_off(tiny_model_dir: Path):
    ctx, scored, ref = make_scored(tiny_model_dir, ["algo.rollout_correction=masked",
                                                    "algo.rollout_correction_level=sequence"])
    off = scored.batch.sampler_logprobs.clone()
    off[0] -= 5.0 * scored.batch.completion_mask[0]  # the sampler gave row 0 far lower probabilities
    shifted = replace(scored, batch=replace(scored.batch, sampler_logprobs=off))
    loss, stats = _loss(ctx, shifted, ref)
    share = scored.batch.completion_mask[0].sum() / scored.batch.completion_mask.sum()
    torch.testing.assert_close(stats["is_masked_share"], share.float())
    assert float(stats["is_ratio_max"]) > 100
    plain, _ = _loss(ctx, scored, ref)
    assert not torch.equal(loss, plain)
