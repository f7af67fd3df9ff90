"""Clipped policy loss: worked numbers, clip-higher, dual clip, gradients and statistics."""

import math

import pytest
import torch

from grpo.algo.policy_loss import clipped_policy_loss, clipped_surrogate_objective
from grpo.algo.registry import POLICY_LOSSES


def _loss(ratios, advantages, mask=None, eps_low=0.2, eps_high=0.2, dual_clip=None):
    """Run the registered "clip" loss on one row of tokens given as ratios."""
    log_ratio = torch.log(torch.tensor([ratios], dtype=torch.float64))
    adv = torch.tensor([advantages], dtype=torch.float64)
    mask_t = torch.ones_like(log_ratio, dtype=torch.bool) if mask is None else torch.tensor([mask])
    return POLICY_LOSSES.get("clip")(log_ratio, adv, mask_t, eps_low, eps_high, dual_clip)


def _close(actual: torch.Tensor, expected: list[float], atol: float = 1e-9) -> bool:
    return torch.allclose(actual, torch.tensor(expected, dtype=actual.dtype), rtol=0.0, atol=atol)


def test_clipped_surrogate_worked_numbers():
    # eps 0.1, so the clip range is [0.9, 1.1].
    # A=2,  r=1.2: min(2.4, 1.1*2=2.2) = 2.2 (gain capped).
    # A=2,  r=1.0: min(2.0, 2.0) = 2.0.
    # A=-2, r=1.2: min(-2.4, 1.1*-2=-2.2) = -2.4 (pessimistic: the unclipped loss stays).
    # A=-2, r=0.8: min(-1.6, 0.9*-2=-1.8) = -1.8 (gain from lowering the ratio capped).
    ratio = torch.tensor([1.2, 1.0, 1.2, 0.8], dtype=torch.float64)
    adv = torch.tensor([2.0, 2.0, -2.0, -2.0], dtype=torch.float64)
    assert _close(clipped_surrogate_objective(ratio, adv, 0.1, 0.1), [2.2, 2.0, -2.4, -1.8])


def test_clip_at_point_two():
    # eps 0.2: with A=1 a ratio of 1.8 counts as 1.2; with A=-1 a ratio of 0.4 counts as 0.8.
    ratio = torch.tensor([1.8, 0.4], dtype=torch.float64)
    adv = torch.tensor([1.0, -1.0], dtype=torch.float64)
    assert _close(clipped_surrogate_objective(ratio, adv, 0.2, 0.2), [1.2, -0.8])


def test_loss_is_negated_objective_with_broadcast_advantages_and_masking():
    log_ratio = torch.log(torch.tensor([[1.2, 1.0, 5.0], [1.2, 0.8, 5.0]], dtype=torch.float64))
    adv = torch.tensor([2.0, -2.0], dtype=torch.float64)  # (N,), one per completion
    mask = torch.tensor([[True, True, False], [True, True, False]])
    out = clipped_policy_loss(log_ratio, adv, mask, 0.1, 0.1, None)
    # Same four tokens as the worked example, negated; masked tokens give 0 whatever their ratio.
    assert _close(out.per_token_loss, [[-2.2, -2.0, 0.0], [2.4, 1.8, 0.0]])


def test_clip_higher_is_asymmetric():
    # eps_low 0.2, eps_high 0.28 (DAPO): A=1, r=1.25 stays 1.25 (inside [0.8, 1.28]);
    # A=1, r=1.3 caps at 1.28; A=-1, r=0.75 caps at 0.8 -> objective -0.8.
    out = _loss([1.25, 1.3, 0.75], [1.0, 1.0, -1.0], eps_low=0.2, eps_high=0.28)
    assert _close(out.per_token_loss, [[-1.25, -1.28, 0.8]])


def test_dual_clip_bounds_negative_advantage_loss():
    # c = 3. A=-1, r=5: PPO gives min(-5, -1.2) = -5; dual clip max(-5, 3*-1) = -3 -> loss 3.
    # A=-1, r=2: min(-2, -1.2) = -2 > -3, unchanged -> loss 2.
    # A=1, r=5: min(5, 1.2) = 1.2 -> loss -1.2 (dual clip only touches A < 0).
    out = _loss([5.0, 2.0, 5.0], [-1.0, -1.0, 1.0], dual_clip=3.0)
    assert _close(out.per_token_loss, [[3.0, 2.0, -1.2]])
    assert _close(_loss([5.0], [-1.0]).per_token_loss, [[5.0]])  # without dual clip


def test_gradient_zero_where_clip_active_and_signed_like_advantage_elsewhere():
    # Objective gradient w.r.t. log_ratio: d(r * A)/d log r = r * A on the unclipped branch, and 0
    # where the clipped (constant) branch or the dual-clip bound c * A is taken. eps 0.2, c = 3.
    ratios = [1.5, 0.5, 0.5, 1.5, 1.1, 0.9, 5.0, 2.0]
    advs = [1.0, -1.0, 1.0, -1.0, 1.0, -1.0, -1.0, 1.0]
    mask = [True] * 7 + [False]
    expected = [
        0.0,  # A>0, r > 1.2: clipped
        0.0,  # A<0, r < 0.8: clipped
        0.5,  # A>0, r < 0.8: unclipped, 0.5 * 1
        -1.5,  # A<0, r > 1.2: unclipped, 1.5 * -1
        1.1,  # inside the range
        -0.9,  # inside the range
        0.0,  # A<0, r > c: dual clip bound
        0.0,  # masked token
    ]
    log_ratio = torch.log(torch.tensor([ratios], dtype=torch.float64)).requires_grad_()
    out = clipped_policy_loss(log_ratio, torch.tensor([advs], dtype=torch.float64), torch.tensor([mask]),
                              0.2, 0.2, 3.0)
    (-out.per_token_loss).sum().backward()  # gradient of the objective (the loss gradient is the negative)
    assert _close(log_ratio.grad, [expected])


def test_stats_hand_numbers():
    # Active tokens: (A>0, r=1.5) high-clipped; (A<0, r=0.5) low-clipped; (A>0, r=0.5) and (A<0, r=1.5)
    # not clipped; a masked token with r=10 and A>0 must not count anywhere.
    out = _loss([1.5, 0.5, 0.5, 1.5, 10.0], [1.0, -1.0, 1.0, -1.0, 1.0], mask=[True] * 4 + [False])
    stats = out.stats
    assert stats.clip_fraction.item() == pytest.approx(0.5, abs=1e-9)  # 2 of 4
    assert stats.clip_fraction_low.item() == pytest.approx(0.25, abs=1e-9)
    assert stats.clip_fraction_high.item() == pytest.approx(0.25, abs=1e-9)
    assert stats.dual_clip_fraction.item() == 0.0
    assert stats.ratio_mean.item() == pytest.approx(1.0, abs=1e-9)  # (1.5 + 0.5 + 0.5 + 1.5) / 4
    assert stats.ratio_max.item() == pytest.approx(1.5, abs=1e-9)  # the masked 10 is ignored
    # k3 of KL(old || new): r - 1 - log r; 1.5 -> 0.5 - 0.405465 = 0.094535, 0.5 -> -0.5 + 0.693147 =
    # 0.193147; mean (2 * 0.094535 + 2 * 0.193147) / 4 = 0.143841.
    expected_kl = (2 * (0.5 - math.log(1.5)) + 2 * (-0.5 - math.log(0.5))) / 4
    assert stats.approx_kl.item() == pytest.approx(expected_kl, abs=1e-9)


def test_stats_dual_clip_fraction_and_zero_advantage():
    # c = 3: (A<0, r=5) takes the dual bound; (A=0, r=2) is outside the range but never "clipped".
    stats = _loss([5.0, 2.0], [-1.0, 0.0], dual_clip=3.0).stats
    assert stats.dual_clip_fraction.item() == pytest.approx(0.5, abs=1e-9)
    assert stats.clip_fraction.item() == 0.0


def test_stats_are_detached_zero_dim():
    log_ratio = torch.zeros(2, 3, requires_grad=True)
    out = clipped_policy_loss(log_ratio, torch.ones(2), torch.ones(2, 3, dtype=torch.bool), 0.2, 0.2, None)
    assert out.per_token_loss.requires_grad
    for value in vars(out.stats).values():
        assert value.ndim == 0 and not value.requires_grad


def test_per_token_advantages_accepted():
    # (N, T) advantages: token 0 with A=1, r=1.0 -> loss -1; token 1 with A=-3, r=1.0 -> loss 3.
    out = _loss([1.0, 1.0], [1.0, -3.0])
    assert _close(out.per_token_loss, [[-1.0, 3.0]])


@pytest.mark.parametrize(
    ("eps_low", "eps_high", "dual_clip"),
    [(-0.1, 0.2, None), (1.0, 0.2, None), (0.2, -0.1, None), (0.2, 0.2, 1.0)],
)
def test_invalid_clip_arguments_raise(eps_low, eps_high, dual_clip):
    with pytest.raises(ValueError):
        _loss([1.0], [1.0], eps_low=eps_low, eps_high=eps_high, dual_clip=dual_clip)
