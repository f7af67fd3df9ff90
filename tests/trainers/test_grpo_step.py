"""One GRPO step on a tiny model: the phases fit together and the update moves the right way."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from grpo.config import load_config
from grpo.models.load import frozen_copy, load_policy, load_tokenizer
from grpo.rewards.combine import single
from grpo.tasks.api import Example
from grpo.trainers.grpo import (
    GRPOContext,
    grpo_step,
    old_policy_logprobs,
    optimisation_pass,
    policy_logprobs,
    reference_logprobs,
    sample_rollouts,
    score_rollouts,
)
from grpo.trainers.optim import build_optimizer

PROMPTS = [Example("1+2*3=", "7"), Example("(4-1)*2+7=", "13"), Example("9-2*2=", "5")]


def sevens(completions: list[str], **_: object) -> list[float]:
    """A dense toy reward: how many '7' characters a completion has (random models sample some)."""
    return [float(text.count("7")) for text in completions]


def make_context(model_dir: Path, overrides: list[str], reward_fn=sevens) -> GRPOContext:
    config = load_config(overrides=["rollout.max_new_tokens=8", "rollout.group_size=4", *overrides])
    tokenizer = load_tokenizer(model_dir)
    policy = load_policy(model_dir, "float32", torch.device("cpu"))
    return GRPOContext(
        policy=policy,
        train_model=policy,
        reference=frozen_copy(policy) if config.algo.beta > 0 else None,
        tokenizer=tokenizer,
        optim=build_optimizer(policy.parameters(), config.optim),
        config=config,
        generator=torch.Generator().manual_seed(0),
        rewards=single(reward_fn),
    )


def surrogate(ctx: GRPOContext, scored) -> float:
    """sum_i A_i * mean_t logprob_it: what one policy-gradient step should increase."""
    logprobs = policy_logprobs(ctx.policy, scored.batch, 1.0, 64)
    mask = scored.batch.completion_mask
    per_sequence = (logprobs * mask).sum(1) / mask.sum(1).clamp(min=1)
    return float((scored.advantages * per_sequence).sum())


def test_step_raises_the_surrogate_and_reports_stats(tiny_model_dir: Path):
    ctx = make_context(tiny_model_dir, ["optim.lr=1e-3"])
    scored = score_rollouts(ctx, sample_rollouts(ctx, PROMPTS), PROMPTS)
    assert scored.advantages.abs().sum() > 0, "the toy reward must give some learning signal"
    before = surrogate(ctx, scored)
    stats = optimisation_pass(ctx, scored, None, reference_logprobs(ctx, scored.batch))
    assert surrogate(ctx, scored) > before
    # mu = 1: pi_old is pi_theta, so every ratio is exactly 1 and nothing is clipped
    assert float(stats["ratio_mean"]) == 1.0 and float(stats["clip_fraction"]) == 0.0
    assert float(stats["kl"]) == 0.0  # policy equals reference before the first update
    assert torch.isfinite(stats["grad_norm"]) and float(stats["skipped_update"]) == 0.0


def test_first_of_mu_passes_has_ratio_exactly_one(tiny_model_dir: Path):
    ctx = make_context(tiny_model_dir, ["algo.mu=2", "optim.lr=1e-2"])
    scored = score_rollouts(ctx, sample_rollouts(ctx, PROMPTS), PROMPTS)
    old = old_policy_logprobs(ctx, scored.batch)
    assert old is not None
    first = optimisation_pass(ctx, scored, old, None)
    second = optimisation_pass(ctx, scored, old, None)
    assert float(first["ratio_mean"]) == 1.0
    assert float(second["ratio_mean"]) != 1.0  # the policy moved after the first update


def test_equal_rewards_leave_the_weights_unchanged(tiny_model_dir: Path):
    ctx = make_context(tiny_model_dir, [], reward_fn=lambda completions, **_: [0.0] * len(completions))
    before = [p.detach().clone() for p in ctx.policy.parameters()]
    stats, _ = grpo_step(ctx, PROMPTS)
    # zero advantages everywhere and KL at its minimum: the gradient, and so the AdamW step, is zero
    assert float(stats["zero_std_groups"]) == 1.0
    assert all(torch.equal(a, b) for a, b in zip(before, ctx.policy.parameters()))


def test_beta_zero_skips_the_reference_model(tiny_model_dir: Path):
    ctx = make_context(tiny_model_dir, ["algo.beta=0"])
    assert ctx.reference is None
    stats, scored = grpo_step(ctx, PROMPTS)
    assert "kl" not in stats
    assert scored.batch.num_completions == len(PROMPTS) * 4
    assert {"reward_mean", "entropy", "clip_fraction", "completion_length", "grad_norm"} <= set(stats)


@pytest.mark.filterwarnings("ignore:Seems like")
def test_micro_batches_accumulate_to_the_full_batch_gradient(tiny_model_dir: Path):
    grads = []
    for size in (5, 256):
        ctx = make_context(tiny_model_dir, [f"optim.micro_batch_size={size}", "optim.max_grad_norm=1e9"])
        scored = score_rollouts(ctx, sample_rollouts(ctx, PROMPTS), PROMPTS)
        ref = reference_logprobs(ctx, scored.batch)
        ctx.optim.optimizer.step = lambda: None  # keep the weights; read the accumulated gradient
        ctx.optim.optimizer.zero_grad = lambda set_to_none=True: None
        optimisation_pass(ctx, scored, None, ref)
        grads.append(torch.cat([p.grad.flatten() for p in ctx.policy.parameters() if p.grad is not None]))
    torch.testing.assert_close(grads[0], grads[1], atol=1e-6, rtol=1e-4)
