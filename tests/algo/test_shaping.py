"""Reward shaping: KL placement, overlong handling, the dynamic-sampling filter and PPO's token rewards."""

from __future__ import annotations

import math

import pytest
import torch

from grpo.algo import (
    KL_PLACEMENTS,
    OVERLONG_POLICIES,
    informative_groups,
    kl_penalized_rewards,
    ppo_token_rewards,
    soft_overlong_penalty,
)


def test_soft_overlong_penalty_hand_values():
    # DAPO eq. 13 with L_max 20, L_cache 4: free up to 16, then (16 - |y|) / 4 down to -1 at 20.
    lengths = torch.tensor([10, 16, 17, 19, 20])
    expected = torch.tensor([0.0, 0.0, -0.25, -0.75, -1.0])
    torch.testing.assert_close(soft_overlong_penalty(lengths, 20, 4), expected)


@pytest.mark.parametrize("buffer", [0, 21])
def test_soft_overlong_penalty_rejects_a_buffer_outside_the_budget(buffer):
    with pytest.raises(ValueError, match="buffer must be in"):
        soft_overlong_penalty(torch.tensor([3]), 20, buffer)


def _overlong_inputs() -> dict:
    rewards = torch.tensor([1.0, 0.0, 1.0])
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1]], dtype=torch.bool)
    return dict(rewards=rewards, completion_mask=mask, completion_lengths=mask.sum(1),
                truncated=torch.tensor([False, True, False]), max_completion_length=4, buffer=2, penalty=0.5)


def test_overlong_none_changes_nothing():
    inputs = _overlong_inputs()
    out = OVERLONG_POLICIES.get("none")(**inputs)
    assert torch.equal(out.rewards, inputs["rewards"]) and torch.equal(out.loss_mask, inputs["completion_mask"])


def test_overlong_mask_drops_only_the_truncated_rows_from_the_loss():
    inputs = _overlong_inputs()
    out = OVERLONG_POLICIES.get("mask")(**inputs)
    assert out.loss_mask.sum(1).tolist() == [2, 0, 4]  # row 1 was truncated
    assert torch.equal(out.rewards, inputs["rewards"])  # its reward still counts in the baseline


def test_overlong_soft_penalty_adds_the_scaled_length_penalty():
    # L_max 4, L_cache 2: lengths [2, 4, 4] -> R_len [0, -1, -1]; penalty 0.5 -> [1, -0.5, 0.5]
    out = OVERLONG_POLICIES.get("soft_penalty")(**_overlong_inputs())
    torch.testing.assert_close(out.rewards, torch.tensor([1.0, -0.5, 0.5]))


def test_kl_placements_put_beta_in_one_place_only():
    assert (KL_PLACEMENTS.get("loss")(0.04).in_loss, KL_PLACEMENTS.get("loss")(0.04).in_reward) == (0.04, 0.0)
    assert (KL_PLACEMENTS.get("reward")(0.04).in_loss, KL_PLACEMENTS.get("reward")(0.04).in_reward) == (0.0, 0.04)


def test_kl_penalized_rewards_hand_example_ignores_masked_nan():
    rewards = torch.tensor([1.0, 0.0])
    kl = torch.tensor([[0.1, 0.2], [0.5, math.nan]])
    mask = torch.tensor([[True, True], [True, False]])
    # [1 - 0.5 * 0.3, 0 - 0.5 * 0.5]
    torch.testing.assert_close(kl_penalized_rewards(rewards, kl, mask, 0.5), torch.tensor([0.85, -0.25]))


def test_ppo_token_rewards_hand_example():
    kl = torch.tensor([[0.2, 0.4, 7.0], [0.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, False], [False, False, False]])
    got = ppo_token_rewards(torch.tensor([1.0, 5.0]), kl, mask, 0.5)
    # row 0: -0.1 at t0, 1 - 0.2 at its last active token t1, 0 on padding; row 1 has no tokens: all 0
    torch.testing.assert_close(got, torch.tensor([[-0.1, 0.8, 0.0], [0.0, 0.0, 0.0]]))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ppo_token_rewards_match_a_plain_loop(seed):
    generator = torch.Generator().manual_seed(seed)
    n, t = 6, 7
    scores, kl = torch.randn(n, generator=generator), torch.randn(n, t, generator=generator)
    lengths = torch.randint(0, t + 1, (n,), generator=generator)
    mask = torch.arange(t) < lengths[:, None]
    got = ppo_token_rewards(scores, kl, mask, 0.3)
    for i in range(n):
        for j in range(t):
            expected = 0.0
            if j < lengths[i]:
                expected = -0.3 * float(kl[i, j]) + (float(scores[i]) if j == lengths[i] - 1 else 0.0)
            assert float(got[i, j]) == pytest.approx(expected, abs=1e-6), (i, j)


def test_informative_groups_hand_example():
    # G = 3: [1,0,0] differs; [1,1,1] all equal; [1, None, 1] equal among the scored; [0, 1, None] differs
    rewards = torch.tensor([1.0, 0, 0, 1, 1, 1, 1, math.nan, 1, 0, 1, math.nan])
    valid = ~torch.isnan(rewards)
    assert informative_groups(rewards, valid, 3).tolist() == [True, False, False, True]


def test_informative_groups_needs_two_scored_rewards():
    rewards, valid = torch.tensor([1.0, 0.0]), torch.tensor([True, False])
    assert informative_groups(rewards, valid, 2).tolist() == [False]
