"""GRPO variant keys inside the step: entropy bonus, KL placement, overlong handling, dynamic sampling,
reference refresh. Each test compares with a value computed independently of the trainer."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from grpo.algo import LossNormalizer, soft_overlong_penalty
from grpo.models.logprobs import completion_logprobs
from grpo.rewards.combine import WeightedReward
from grpo.tasks.api import Example
from grpo.trainers.grpo import GRPOBatch, grpo_loss, shape_rewards
from grpo.trainers.logprob_passes import policy_logprobs, reference_logprobs
from grpo.trainers.methods import with_reference_refresh
from grpo.trainers.rollout_phase import GenerationClock, draw_informative, rollout_phase, rollout_stats, sample, score
from grpo.trainers.scored import Scored, advantages_of
from grpo.trainers.state import TrainState

PROMPTS = [Example("1+2*3=", "7"), Example("(4-1)*2+7=", "13"), Example("9-2*2=", "5")]


def sevens(completions: list[str], **_: object) -> list[float]:
    return [float(text.count("7")) for text in completions]


def _advantages(state: TrainState, scored: Scored, rewards: torch.Tensor | None = None) -> torch.Tensor:
    rewards = scored.rewards if rewards is None else rewards
    return advantages_of(state.config.algo, rewards, scored.valid, scored.batch.group_size)


def _loss(state: TrainState, scored: Scored, ref: torch.Tensor | None, rewards: torch.Tensor | None = None,
          loss_mask: torch.Tensor | None = None) -> torch.Tensor:
    """The loss of the whole batch as one micro-batch, with advantages of `rewards` (default: the scored
    ones) and `loss_mask` as the completion mask (default: the batch's own)."""
    batch = scored.batch if loss_mask is None else replace(scored.batch, completion_mask=loss_mask)
    norm = LossNormalizer(batch.num_completions, int(batch.completion_mask.sum()), 8)
    data = GRPOBatch(batch, _advantages(state, scored, rewards), None, ref)
    return grpo_loss(state, data, slice(0, batch.num_completions), norm).loss


def _value(state: TrainState, scored: Scored, ref: torch.Tensor | None) -> float:
    return float(_loss(state, scored, ref).detach())


def _scored(state: TrainState, examples: list[Example] = PROMPTS) -> Scored:
    return score(state, sample(state, examples), examples)


def _ref(state: TrainState, scored: Scored) -> torch.Tensor | None:
    return reference_logprobs(state, scored.batch, state.config.rollout.temperature)


def test_entropy_bonus_subtracts_coef_times_the_aggregated_entropy(tiny_model_dir: Path, make_state):
    plain = make_state(tiny_model_dir, ["algo.beta=0"], sevens)
    bonus = make_state(tiny_model_dir, ["algo.beta=0", "algo.entropy_coef=0.5"], sevens)
    scored = _scored(plain)
    batch = scored.batch
    input_ids, attention_mask = batch.sequences()
    _, entropy = completion_logprobs(plain.policy, input_ids, attention_mask, batch.completion_ids.shape[1], 1.0)
    # seq_mean_token_mean by hand: mean over sequences of the mean entropy over each one's tokens
    per_sequence = [float(entropy[i][batch.completion_mask[i]].mean()) for i in range(batch.num_completions)]
    expected = _value(plain, scored, None) - 0.5 * sum(per_sequence) / len(per_sequence)
    with_bonus = _loss(bonus, scored, None)
    assert float(with_bonus.detach()) == pytest.approx(expected, abs=1e-5)
    with_bonus.backward()  # the bonus carries a gradient (entropy_grad), unlike the logged entropy
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in bonus.policy.parameters())


def test_kl_in_the_reward_subtracts_beta_times_summed_k3(tiny_model_dir: Path, make_state):
    state = make_state(tiny_model_dir, ["algo.kl_placement=reward", "algo.beta=0.5"], sevens,
                       perturb_reference=True)
    scored = _scored(state)
    ref = _ref(state, scored)
    rewards, loss_mask = shape_rewards(state, scored, None, ref)
    logprobs = policy_logprobs(state, state.policy, scored.batch, 1.0)
    mask = scored.batch.completion_mask
    for i in range(scored.batch.num_completions):
        kl = 0.0
        for t in range(mask.shape[1]):
            if mask[i, t]:
                log_r = float(ref[i, t]) - float(logprobs[i, t])
                kl += torch.tensor(log_r).exp().item() - log_r - 1.0
        assert float(rewards[i]) == pytest.approx(float(scored.rewards[i]) - 0.5 * kl, abs=1e-4)
    assert not torch.equal(_advantages(state, scored, rewards), _advantages(state, scored))
    # ... and the loss carries no KL term: with or without the reference it is the same number
    torch.testing.assert_close(_loss(state, scored, ref, rewards, loss_mask),
                               _loss(state, scored, None, rewards, loss_mask))


def test_kl_in_the_loss_leaves_rewards_alone_and_adds_beta_kl(tiny_model_dir: Path, make_state):
    state = make_state(tiny_model_dir, ["algo.beta=0.5"], sevens, perturb_reference=True)
    scored = _scored(state)
    ref = _ref(state, scored)
    rewards, loss_mask = shape_rewards(state, scored, None, ref)
    assert rewards is scored.rewards and loss_mask is scored.batch.completion_mask
    assert _value(state, scored, ref) > _value(state, scored, None)  # k3 >= 0, and > 0 here


def test_overlong_mask_and_soft_penalty(tiny_model_dir: Path, make_state):
    # a random tiny model rarely stops within 3 tokens, so most completions are truncated
    masked = make_state(tiny_model_dir, ["algo.overlong=mask", "rollout.max_new_tokens=3", "algo.beta=0"], sevens)
    scored = _scored(masked)
    truncated = scored.batch.truncated
    assert truncated.any()
    _, loss_mask = shape_rewards(masked, scored, None, None)
    assert (loss_mask.sum(1) == 0).tolist() == truncated.tolist()
    soft = make_state(tiny_model_dir, ["algo.overlong=soft_penalty", "rollout.max_new_tokens=3",
                                       "algo.overlong_buffer=2", "algo.overlong_penalty=0.5", "algo.beta=0"], sevens)
    rewards, _ = shape_rewards(soft, scored, None, None)
    lengths = scored.batch.completion_lengths
    expected = scored.rewards + 0.5 * soft_overlong_penalty(lengths, 3, 2)
    torch.testing.assert_close(rewards, expected)
    assert (rewards[truncated] == scored.rewards[truncated] - 0.5).all()  # full length: R_len = -1


def test_dynamic_sampling_fills_the_batch_with_informative_groups(tiny_model_dir: Path, make_state):
    only_sevens = lambda completions, answer, **_: [float(text.count("7")) if a == "7" else 0.0
                                                    for text, a in zip(completions, answer)]
    state = make_state(tiny_model_dir, ["algo.dynamic_sampling=true", "algo.max_draws=6",
                                        "rollout.max_new_tokens=12"], only_sevens)
    calls = []
    state.more_prompts = lambda: calls.append(1) or [Example("1+2*3=", "7")] * 3
    scored, stats = draw_informative(state, [Example("2*3=", "6")] * 3)  # constant 0 reward: no signal
    G = 4
    grouped = scored.rewards.view(-1, G)
    assert scored.batch.num_completions == int(stats["informative_groups"]) * G
    assert (grouped.amax(1) > grouped.amin(1)).all()  # every kept group carries signal
    assert int(stats["sampling_draws"]) == len(calls) + 1 and int(stats["informative_groups"]) >= 1
    assert _advantages(state, scored).abs().sum() > 0


def test_dynamic_sampling_stops_at_max_draws(tiny_model_dir: Path, make_state):
    state = make_state(tiny_model_dir, ["algo.dynamic_sampling=true", "algo.max_draws=3"],
                       lambda completions, **_: [1.0] * len(completions))
    calls = []
    state.more_prompts = lambda: calls.append(1) or PROMPTS
    scored, stats = draw_informative(state, PROMPTS)
    assert (int(stats["sampling_draws"]), int(stats["informative_groups"]), len(calls)) == (3, 0, 2)
    assert scored.batch.num_completions == len(PROMPTS) * 4 and float(_advantages(state, scored).abs().sum()) == 0


def test_the_generation_clock_counts_every_draw_and_the_step_reports_it(tiny_model_dir: Path, make_state):
    state = make_state(tiny_model_dir, ["algo.dynamic_sampling=true", "algo.max_draws=3"],
                       lambda completions, **_: [1.0] * len(completions))  # no signal: all three draws run
    clock, batches = GenerationClock(), []
    for _ in range(2):
        batches.append(sample(state, PROMPTS, clock))
    assert clock.tokens == sum(int(batch.completion_mask.sum()) for batch in batches) > 0 and clock.seconds > 0
    state.more_prompts = lambda: PROMPTS
    scored, stats = rollout_phase(state, PROMPTS)
    tokens = float(stats["generation_tokens_per_s"] * stats["generation_time"])
    assert int(stats["sampling_draws"]) == 3 and tokens > int(scored.batch.completion_mask.sum())  # 3 draws, 1 kept
    plain = make_state(tiny_model_dir, ["algo.dynamic_sampling=false"], sevens)
    scored, stats = rollout_phase(plain, PROMPTS)
    tokens = float(stats["generation_tokens_per_s"] * stats["generation_time"])
    assert tokens == pytest.approx(int(scored.batch.completion_mask.sum()), rel=1e-4)


def test_reference_refresh_copies_the_policy_every_n_steps():
    policy, reference = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)

    def step(examples: list) -> tuple[dict, list]:
        with torch.no_grad():
            policy.weight.add_(1.0)
        return {}, []

    refreshing = with_reference_refresh(step, SimpleNamespace(policy=policy, reference=reference), every=2)
    stats, _ = refreshing([])
    assert float(stats["reference_refreshed"]) == 0 and not torch.equal(reference.weight, policy.weight)
    stats, _ = refreshing([])
    assert float(stats["reference_refreshed"]) == 1 and torch.equal(reference.weight, policy.weight)
    assert with_reference_refresh(step, SimpleNamespace(policy=policy, reference=None), every=2) is step


def test_dynamic_sampling_keeps_each_reward_function_s_scores(tiny_model_dir: Path, make_state):
    sevens_where_seven = lambda completions, answer, **_: [float(text.count("7")) if a == "7" else 0.0
                                                          for text, a in zip(completions, answer)]
    state = make_state(tiny_model_dir, ["algo.dynamic_sampling=true", "algo.max_draws=6",
                                        "rollout.max_new_tokens=12"], sevens_where_seven)
    state.rewards = [WeightedReward("sevens", sevens_where_seven, 1.0),
                     WeightedReward("length", lambda completions, **_: [len(t) / 100 for t in completions], 0.5)]
    state.more_prompts = lambda: [Example("1+2*3=", "7")] * 3
    scored, stats = draw_informative(state, [Example("2*3=", "6")] * 3)
    assert int(stats["informative_groups"]) >= 1
    assert set(scored.components) == {"sevens", "length"}
    # the gathered rows keep their per-function scores, so the weighted total still adds up row by row
    total = scored.components["sevens"] + 0.5 * scored.components["length"]
    torch.testing.assert_close(total.to(scored.rewards.device), scored.rewards)
    assert "reward/length" in rollout_stats(scored)
