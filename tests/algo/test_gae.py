"""GAE: hand examples, lambda limits, and a plain-loop reference on padded random inputs."""

import pytest
import torch

from grpo.algo.gae import gae_advantages_and_returns


def _close(actual: torch.Tensor, expected, atol: float = 1e-9) -> bool:
    return torch.allclose(actual, torch.as_tensor(expected, dtype=actual.dtype), rtol=0.0, atol=atol)


def test_hand_example_gamma_lambda_one():
    rewards = torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)
    values = torch.tensor([[0.5, 0.6, 0.7]], dtype=torch.float64)
    mask = torch.ones(1, 3, dtype=torch.bool)
    # deltas (V after the end is 0): d2 = 1 - 0.7 = 0.3, d1 = 0 + 0.7 - 0.6 = 0.1, d0 = 0.6 - 0.5 = 0.1.
    # gamma = lam = 1: A2 = 0.3, A1 = 0.1 + 0.3 = 0.4, A0 = 0.1 + 0.4 = 0.5; returns A + V = 1, 1, 1.
    advantages, returns = gae_advantages_and_returns(rewards, values, mask, gamma=1.0, lam=1.0)
    assert _close(advantages, [[0.5, 0.4, 0.3]])
    assert _close(returns, [[1.0, 1.0, 1.0]])


def test_hand_example_with_padding_is_terminal():
    rewards = torch.tensor([[0.0, 1.0, 5.0]], dtype=torch.float64)
    values = torch.tensor([[0.2, 0.4, 7.0]], dtype=torch.float64)
    mask = torch.tensor([[True, True, False]])
    # The padded 5.0 / 7.0 are ignored and V after token 1 is 0. gamma 0.9, lam 0.5:
    # d1 = 1 + 0 - 0.4 = 0.6, A1 = 0.6;  d0 = 0 + 0.9 * 0.4 - 0.2 = 0.16, A0 = 0.16 + 0.45 * 0.6 = 0.43.
    # Returns: 0.43 + 0.2 = 0.63, 0.6 + 0.4 = 1.0, and 0 at the padded position.
    advantages, returns = gae_advantages_and_returns(rewards, values, mask, gamma=0.9, lam=0.5)
    assert _close(advantages, [[0.43, 0.6, 0.0]])
    assert _close(returns, [[0.63, 1.0, 0.0]])


def test_lambda_one_returns_are_discounted_reward_sums_whatever_the_values():
    # With lam = 1 the value terms telescope: R_t = sum_k gamma^k r_{t+k}.
    # Rewards [1, 0, 2], gamma 0.5: R2 = 2, R1 = 0 + 0.5 * 2 = 1, R0 = 1 + 0.5 * 1 = 1.5.
    rewards = torch.tensor([[1.0, 0.0, 2.0]], dtype=torch.float64)
    mask = torch.ones(1, 3, dtype=torch.bool)
    for values in ([[0.0, 0.0, 0.0]], [[3.0, -1.0, 0.25]]):
        _, returns = gae_advantages_and_returns(
            rewards, torch.tensor(values, dtype=torch.float64), mask, gamma=0.5, lam=1.0
        )
        assert _close(returns, [[1.5, 1.0, 2.0]])


def test_lambda_zero_gives_one_step_td_error():
    # lam = 0: A_t = delta_t. Rewards [1, 2], values [0.5, 1.5], gamma 0.9:
    # d0 = 1 + 0.9 * 1.5 - 0.5 = 1.85; d1 = 2 + 0 - 1.5 = 0.5.
    advantages, _ = gae_advantages_and_returns(
        torch.tensor([[1.0, 2.0]], dtype=torch.float64),
        torch.tensor([[0.5, 1.5]], dtype=torch.float64),
        torch.ones(1, 2, dtype=torch.bool),
        gamma=0.9,
        lam=0.0,
    )
    assert _close(advantages, [[1.85, 0.5]])


def test_outputs_are_detached():
    values = torch.zeros(1, 2, requires_grad=True)
    advantages, returns = gae_advantages_and_returns(
        torch.ones(1, 2), values, torch.ones(1, 2, dtype=torch.bool), gamma=1.0, lam=1.0
    )
    assert not advantages.requires_grad and not returns.requires_grad


def _reference(rewards, values, mask, gamma, lam):
    """Plain loops over Python lists; masked tokens are skipped, the episode ends after the last one."""
    advantages = [[0.0] * len(row) for row in rewards]
    returns = [[0.0] * len(row) for row in rewards]
    for i in range(len(rewards)):
        next_value, next_advantage = 0.0, 0.0
        for t in reversed(range(len(rewards[i]))):
            if not mask[i][t]:
                continue
            delta = rewards[i][t] + gamma * next_value - values[i][t]
            advantage = delta + gamma * lam * next_advantage
            advantages[i][t] = advantage
            returns[i][t] = advantage + values[i][t]
            next_value, next_advantage = values[i][t], advantage
    return advantages, returns


@pytest.mark.parametrize("seed", range(3))
def test_matches_plain_loop_reference_with_padding(seed):
    generator = torch.Generator().manual_seed(seed)
    n, t = 4, 7
    rewards = torch.randn(n, t, generator=generator, dtype=torch.float64)
    values = torch.randn(n, t, generator=generator, dtype=torch.float64)
    lengths = torch.tensor([7, 4, 1, 0])
    mask = torch.arange(t).unsqueeze(0) < lengths.unsqueeze(1)  # right padding, one empty row
    mask[0, 2] = False  # a hole inside a completion (e.g. a tool-output token that does not count)
    advantages, returns = gae_advantages_and_returns(rewards, values, mask, gamma=0.95, lam=0.9)
    ref_advantages, ref_returns = _reference(rewards.tolist(), values.tolist(), mask.tolist(), 0.95, 0.9)
    assert _close(advantages, ref_advantages, atol=1e-12)
    assert _close(returns, ref_returns, atol=1e-12)
