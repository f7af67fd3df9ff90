"""Preference losses against their closed forms with hand numbers."""

import math

import pytest
import torch

from grpo.algo.registry import PREFERENCE_LOSSES

# Two pairs, beta = 0.5. Margins h = chosen - rejected = [1.0, -0.5]; beta * h = [0.5, -0.25].
CHOSEN = torch.tensor([1.0, 0.5], dtype=torch.float64)
REJECTED = torch.tensor([0.0, 1.0], dtype=torch.float64)
BETA = 0.5


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # DPO: -log sigmoid(beta h) = log(1 + exp(-beta h)): log(1 + e^-0.5) = 0.474077,
        # log(1 + e^0.25) = 0.825939.
        ("dpo", [math.log1p(math.exp(-0.5)), math.log1p(math.exp(0.25))]),
        # IPO: (h - 1/(2 beta))^2 with target 1: (1 - 1)^2 = 0, (-0.5 - 1)^2 = 2.25.
        ("ipo", [0.0, 2.25]),
        # Hinge: max(0, 1 - beta h): 1 - 0.5 = 0.5, 1 + 0.25 = 1.25.
        ("hinge", [0.5, 1.25]),
    ],
)
def test_closed_forms(name, expected):
    losses, _ = PREFERENCE_LOSSES.get(name)(CHOSEN, REJECTED, BETA)
    assert torch.allclose(losses, torch.tensor(expected, dtype=torch.float64), rtol=0.0, atol=1e-12)


def test_hinge_is_zero_past_the_margin():
    # h = 4, beta 0.5: 1 - 2 < 0 -> 0.
    losses, _ = PREFERENCE_LOSSES.get("hinge")(torch.tensor([4.0]), torch.tensor([0.0]), 0.5)
    assert losses.item() == 0.0


def test_dpo_gradient_pushes_chosen_up_and_rejected_down():
    chosen = CHOSEN.clone().requires_grad_()
    rejected = REJECTED.clone().requires_grad_()
    losses, _ = PREFERENCE_LOSSES.get("dpo")(chosen, rejected, BETA)
    losses.sum().backward()
    # d/dc [-log sigmoid(beta (c - r))] = -beta * sigmoid(-beta h): -0.5 * sigmoid(-0.5) = -0.188766 and
    # -0.5 * sigmoid(0.25) = -0.281088; the rejected gradient is the negative.
    sig = lambda x: 1.0 / (1.0 + math.exp(-x))  # noqa: E731
    expected = torch.tensor([-0.5 * sig(-0.5), -0.5 * sig(0.25)], dtype=torch.float64)
    assert torch.allclose(chosen.grad, expected, atol=1e-12)
    assert torch.allclose(rejected.grad, -expected, atol=1e-12)


@pytest.mark.parametrize("name", PREFERENCE_LOSSES.names())
def test_stats(name):
    _, stats = PREFERENCE_LOSSES.get(name)(CHOSEN, REJECTED, BETA)
    # Rewards beta * logratio: chosen [0.5, 0.25] (mean 0.375), rejected [0, 0.5] (mean 0.25);
    # margins [0.5, -0.25] (mean 0.125); chosen wins in 1 of 2 pairs.
    assert stats.chosen_reward_mean.item() == pytest.approx(0.375, abs=1e-12)
    assert stats.rejected_reward_mean.item() == pytest.approx(0.25, abs=1e-12)
    assert stats.margin_mean.item() == pytest.approx(0.125, abs=1e-12)
    assert stats.reward_accuracy.item() == pytest.approx(0.5, abs=1e-12)


@pytest.mark.parametrize("name", PREFERENCE_LOSSES.names())
def test_bad_arguments(name):
    with pytest.raises(ValueError, match="beta"):
        PREFERENCE_LOSSES.get(name)(CHOSEN, REJECTED, 0.0)
    with pytest.raises(ValueError, match="shape"):
        PREFERENCE_LOSSES.get(name)(CHOSEN, REJECTED[:1], BETA)
