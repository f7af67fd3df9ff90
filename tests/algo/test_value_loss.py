"""Clipped value loss: hand numbers, gradients where the clip decides, statistics."""

import pytest
import torch

from grpo.algo.value_loss import clipped_value_loss


def _run(values, old_values, returns, mask=None, clip_range=0.2):
    as_row = lambda xs: torch.tensor([xs], dtype=torch.float64)  # noqa: E731
    mask_t = torch.ones(1, len(values), dtype=torch.bool) if mask is None else torch.tensor([mask])
    v = as_row(values).requires_grad_()
    loss, stats = clipped_value_loss(v, as_row(old_values), as_row(returns), mask_t, clip_range)
    return v, loss, stats


def test_hand_numbers_and_gradient():
    # clip_range 0.2 around old value 1.0, so the clipped prediction lies in [0.8, 1.2]; target R = 2.
    # v = 1.5: clipped 1.2; (1.5-2)^2 = 0.25 vs (1.2-2)^2 = 0.64 -> 0.5 * 0.64 = 0.32, clipped term wins.
    # v = 1.1: inside; 0.5 * (1.1-2)^2 = 0.405.
    # v = 0.9: inside; 0.5 * (0.9-2)^2 = 0.605.
    # v = 3.0 (masked): loss 0.
    v, loss, stats = _run([1.5, 1.1, 0.9, 3.0], [1.0] * 4, [2.0] * 4, mask=[True, True, True, False])
    assert torch.allclose(loss, torch.tensor([[0.32, 0.405, 0.605, 0.0]], dtype=torch.float64), atol=1e-12)
    loss.sum().backward()
    # Where the clipped term wins its value is the constant 1.2 -> gradient 0; elsewhere d/dv of
    # 0.5 (v - R)^2 is v - R: 1.1 - 2 = -0.9, 0.9 - 2 = -1.1.
    assert torch.allclose(v.grad, torch.tensor([[0.0, -0.9, -1.1, 0.0]], dtype=torch.float64), atol=1e-12)
    # Stats over the 3 active tokens: clip decides 1 of 3; mean value (1.5 + 1.1 + 0.9) / 3;
    # unclipped mse (0.25 + 0.81 + 1.21) / 3.
    assert stats.clip_fraction.item() == pytest.approx(1.0 / 3.0, abs=1e-6)  # float32 fraction
    assert stats.value_mean.item() == pytest.approx(3.5 / 3.0, abs=1e-9)
    assert stats.value_mse.item() == pytest.approx(2.27 / 3.0, abs=1e-9)
    assert not any(s.requires_grad for s in vars(stats).values())


def test_clip_applies_on_the_low_side_too():
    # Target 0, old 1.0, v = 0.5: clipped prediction 0.8; unclipped 0.25 vs clipped 0.64 -> 0.32.
    _, loss, _ = _run([0.5], [1.0], [0.0])
    assert loss.item() == pytest.approx(0.32, abs=1e-12)


def test_invalid_clip_range():
    with pytest.raises(ValueError, match="clip_range"):
        _run([1.0], [1.0], [1.0], clip_range=0.0)
