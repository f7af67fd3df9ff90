"""One GRPO step on a tiny model: the phases fit together and the update moves the right way."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import grpo.trainers.grpo as grpo_module
from grpo.tasks.api import Example
from grpo.trainers.grpo import GRPOBatch, grpo_step, grpo_update, old_logprobs
from grpo.trainers.logprob_passes import policy_logprobs, reference_logprobs
from grpo.trainers.rollout_phase import sample, score
from grpo.trainers.scored import Scored, advantages_of
from grpo.trainers.state import TrainState

PROMPTS = [Example("1+2*3=", "7"), Example("(4-1)*2+7=", "13"), Example("9-2*2=", "5")]


def sevens(completions: list[str], **_: object) -> list[float]:
    """A dense toy reward: how many '7' characters a completion has (random models sample some)."""
    return [float(text.count("7")) for text in completions]


def scored_with_advantages(state: TrainState) -> tuple[Scored, torch.Tensor]:
    scored = score(state, sample(state, PROMPTS), PROMPTS)
    return scored, advantages_of(state.config.algo, scored.rewards, scored.valid, scored.batch.group_size)


def surrogate(state: TrainState, scored: Scored, advantages: torch.Tensor) -> float:
    """sum_i A_i * mean_t logprob_it: what one policy-gradient step should increase."""
    logprobs = policy_logprobs(state, state.policy, scored.batch, 1.0)
    mask = scored.batch.completion_mask
    per_sequence = (logprobs * mask).sum(1) / mask.sum(1).clamp(min=1)
    return float((advantages * per_sequence).sum())


def test_step_raises_the_surrogate_and_reports_stats(tiny_model_dir: Path, make_state):
    state = make_state(tiny_model_dir, ["optim.lr=1e-3"], sevens)
    scored, advantages = scored_with_advantages(state)
    assert advantages.abs().sum() > 0, "the toy reward must give some learning signal"
    before = surrogate(state, scored, advantages)
    ref = reference_logprobs(state, scored.batch, state.config.rollout.temperature)
    stats = grpo_update(state, GRPOBatch(scored.batch, advantages, None, ref))
    assert surrogate(state, scored, advantages) > before
    # mu = 1: pi_old is pi_theta, so every ratio is exactly 1 and nothing is clipped
    assert float(stats["ratio_mean"]) == 1.0 and float(stats["clip_fraction"]) == 0.0
    assert float(stats["kl"]) == 0.0  # policy equals reference before the first update
    assert torch.isfinite(stats["grad_norm"]) and float(stats["skipped_update"]) == 0.0


def test_first_of_mu_passes_has_ratio_exactly_one(tiny_model_dir: Path, make_state):
    state = make_state(tiny_model_dir, ["algo.mu=2", "optim.lr=1e-2"], sevens)
    scored, advantages = scored_with_advantages(state)
    old = old_logprobs(state, scored.batch)
    assert old is not None
    data = GRPOBatch(scored.batch, advantages, old, None)
    first = grpo_update(state, data)
    second = grpo_update(state, data)
    assert float(first["ratio_mean"]) == 1.0
    assert float(second["ratio_mean"]) != 1.0  # the policy moved after the first update


def test_equal_rewards_leave_the_weights_unchanged(tiny_model_dir: Path, make_state):
    state = make_state(tiny_model_dir, [], lambda completions, **_: [0.0] * len(completions))
    before = [p.detach().clone() for p in state.policy.parameters()]
    stats, _ = grpo_step(state, PROMPTS)
    # zero advantages everywhere and KL at its minimum: the gradient, and so the AdamW step, is zero
    assert float(stats["zero_std_groups"]) == 1.0
    assert all(torch.equal(a, b) for a, b in zip(before, state.policy.parameters()))


def test_beta_zero_skips_the_reference_model(tiny_model_dir: Path, make_state, monkeypatch: pytest.MonkeyPatch):
    state = make_state(tiny_model_dir, ["algo.beta=0", "algo.dynamic_sampling=false"], sevens)
    assert state.reference is None
    rollouts = []
    real = grpo_module.rollout_phase
    monkeypatch.setattr(grpo_module, "rollout_phase", lambda *args: rollouts.append(real(*args)) or rollouts[-1])
    stats, samples = grpo_step(state, PROMPTS)
    assert "kl" not in stats
    assert len(rollouts) == 1 and rollouts[0][0].batch.num_completions == len(PROMPTS) * 4
    assert {"reward_mean", "entropy", "clip_fraction", "completion_length", "grad_norm"} <= set(stats)
    assert [record["prompt"] for record in samples] == [PROMPTS[0].prompt] * 4 + [PROMPTS[1].prompt] * 4


@pytest.mark.filterwarnings("ignore:Seems like")
def test_micro_batches_accumulate_to_the_full_batch_gradient(tiny_model_dir: Path, make_state):
    grads = []
    for size in (5, 256):
        state = make_state(tiny_model_dir, [f"optim.micro_batch_size={size}", "optim.max_grad_norm=1e9"], sevens)
        scored, advantages = scored_with_advantages(state)
        ref = reference_logprobs(state, scored.batch, state.config.rollout.temperature)
        state.optim.optimizer.step = lambda: None  # keep the weights; read the accumulated gradient
        state.optim.optimizer.zero_grad = lambda set_to_none=True: None
        grpo_update(state, GRPOBatch(scored.batch, advantages, None, ref))
        grads.append(torch.cat([p.grad.flatten() for p in state.policy.parameters() if p.grad is not None]))
    torch.testing.assert_close(grads[0], grads[1], atol=1e-6, rtol=1e-4)
