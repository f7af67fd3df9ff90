"""algo.rollout_correction inside the GRPO loss: `none` gives today's loss bit for bit, the others act."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from grpo.algo import KL_ESTIMATORS, KL_PLACEMENTS, LOSS_AGGREGATIONS, POLICY_LOSSES, RATIO_LEVELS, LossNormalizer
from grpo.tasks.api import Example
from grpo.trainers.grpo import GRPOBatch, grpo_loss
from grpo.trainers.logprob_passes import reference_logprobs, rows_logprobs
from grpo.trainers.rollout_phase import sample, score
from grpo.trainers.scored import advantages_of

PROMPTS = [Example("1+2*3=", "7"), Example("(4-1)*2+7=", "13")]


def sevens(completions: list[str], **_: object) -> list[float]:
    return [float(text.count("7")) for text in completions]


def make_scored(make_state, model_dir: Path, overrides: list[str]) -> tuple:
    """(state, scored rollouts, reference log-probs) after one sampling phase."""
    state = make_state(model_dir, overrides, sevens)
    scored = score(state, sample(state, PROMPTS), PROMPTS)
    return state, scored, reference_logprobs(state, scored.batch, 1.0)


def _norm(scored) -> LossNormalizer:
    batch = scored.batch
    return LossNormalizer(batch.num_completions, int(batch.completion_mask.sum()), 8)


def _advantages(state, scored) -> torch.Tensor:
    return advantages_of(state.config.algo, scored.rewards, scored.valid, scored.batch.group_size)


def _loss(state, scored, ref) -> tuple[torch.Tensor, dict]:
    rows = slice(0, scored.batch.num_completions)
    part = grpo_loss(state, GRPOBatch(scored.batch, _advantages(state, scored), None, ref), rows, _norm(scored))
    return part.loss, part.means


def test_none_is_bit_identical_to_the_loss_without_correction(tiny_model_dir: Path, make_state):
    state, scored, ref = make_scored(make_state, tiny_model_dir, [])
    loss, stats = _loss(state, scored, ref)
    # The loss as computed before the correction existed, phase by phase.
    algo, batch, rows = state.config.algo, scored.batch, slice(0, scored.batch.num_completions)
    logprobs, entropy = rows_logprobs(state.policy, batch, rows, 1.0)
    mask = batch.completion_mask
    log_ratio = RATIO_LEVELS.get(algo.ratio_level)(logprobs, logprobs.detach(), mask)
    advantages = _advantages(state, scored)
    policy = POLICY_LOSSES.get(algo.policy_loss)(log_ratio, advantages, mask, algo.eps_low, algo.clip_high,
                                                 algo.dual_clip)
    per_token = policy.per_token_loss - algo.entropy_coef * entropy
    per_token = per_token + KL_PLACEMENTS.get("loss")(algo.beta).in_loss * KL_ESTIMATORS.get("k3")(logprobs, ref)
    expected = LOSS_AGGREGATIONS.get(algo.loss_aggregation)(per_token, mask, _norm(scored))
    assert torch.equal(loss, expected)
    assert float(stats["sampler_kl_k3"]) < 1e-8 and float(stats["is_masked_share"]) == 0.0


def test_masked_drops_a_row_whose_sampler_logprobs_are_off(tiny_model_dir: Path, make_state):
    state, scored, ref = make_scored(make_state, tiny_model_dir, ["algo.rollout_correction=masked",
                                                    "algo.rollout_correction_level=sequence"])
    off = scored.batch.sampler_logprobs.clone()
    off[0] -= 5.0 * scored.batch.completion_mask[0]  # the sampler gave row 0 far lower probabilities
    shifted = replace(scored, batch=replace(scored.batch, sampler_logprobs=off))
    loss, stats = _loss(state, shifted, ref)
    share = scored.batch.completion_mask[0].sum() / scored.batch.completion_mask.sum()
    torch.testing.assert_close(stats["is_masked_share"], share.float())
    assert float(stats["is_ratio_max"]) > 100
    plain, _ = _loss(state, scored, ref)
    assert not torch.equal(loss, plain)
