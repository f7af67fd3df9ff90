"""Rollout correction (none / truncated IS / masked IS, token or sequence level): hand-computed numbers."""

import math

import pytest
import torch

from grpo.algo import ROLLOUT_CORRECTIONS, mismatch_stats
from grpo.algo.rollout_correction import masked_importance_sampling, no_correction, truncated_importance_sampling

# Two rows of three tokens; the last token of row 1 is padding.
# token log-ratios d = old - sampler: row 0: [log 2, 0, -log 4], row 1: [log 3, log 0.5, (pad)].
OLD = torch.tensor([[math.log(0.5), math.log(0.3), math.log(0.1)], [math.log(0.6), math.log(0.2), 0.0]])
SAMPLER = torch.tensor([[math.log(0.25), math.log(0.3), math.log(0.4)], [math.log(0.2), math.log(0.4), 0.0]])
MASK = torch.tensor([[True, True, True], [True, True, False]])


def test_truncated_token_level_caps_each_ratio_at_c():
    # ratios [2, 1, 0.25] and [3, 0.5, pad -> exp(0) = 1]; C = 2.5 caps 3 to 2.5.
    out = truncated_importance_sampling(OLD, SAMPLER, MASK, "token", 2.5)
    expected = torch.tensor([[2.0, 1.0, 0.25], [2.5, 0.5, 1.0]])
    torch.testing.assert_close(out.weights, expected, rtol=0, atol=1e-6)
    assert out.loss_mask is MASK


def test_truncated_sequence_level_uses_the_product_of_token_ratios():
    # row 0: 2 * 1 * 0.25 = 0.5 (under the cap); row 1: 3 * 0.5 = 1.5, capped at C = 1.2.
    out = truncated_importance_sampling(OLD, SAMPLER, MASK, "sequence", 1.2)
    expected = torch.tensor([[0.5, 0.5, 0.5], [1.2, 1.2, 1.2]])
    torch.testing.assert_close(out.weights, expected, rtol=0, atol=1e-6)


def test_masked_token_level_drops_tokens_outside_the_band():
    # C = 2.5: band [0.4, 2.5]; row 0 keeps 2 and 1, drops 0.25; row 1 drops 3, keeps 0.5; pad stays out.
    out = masked_importance_sampling(OLD, SAMPLER, MASK, "token", 2.5)
    assert out.loss_mask.tolist() == [[True, True, False], [False, True, False]]
    expected = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.5, 0.0]])
    torch.testing.assert_close(out.weights, expected, rtol=0, atol=1e-6)


def test_masked_sequence_level_drops_whole_rows():
    # C = 1.8: band [0.556, 1.8]; row 0's ratio 0.5 leaves it (whole row dropped); row 1's 1.5 stays.
    out = masked_importance_sampling(OLD, SAMPLER, MASK, "sequence", 1.8)
    assert out.loss_mask.tolist() == [[False, False, False], [True, True, False]]
    torch.testing.assert_close(out.weights[1, :2], torch.tensor([1.5, 1.5]), rtol=0, atol=1e-6)


def test_none_leaves_the_loss_bit_identical():
    per_token = torch.randn(2, 3, generator=torch.Generator().manual_seed(0))
    out = no_correction(OLD, SAMPLER, MASK, "token", 2.0)
    assert torch.equal(per_token * out.weights, per_token)
    assert out.loss_mask is MASK


def test_registry_names_and_unknown_level():
    assert ROLLOUT_CORRECTIONS.names() == ("none", "truncated", "masked")
    with pytest.raises(ValueError, match="unknown rollout correction level 'tokn'; did you mean 'token'"):
        truncated_importance_sampling(OLD, SAMPLER, MASK, "tokn", 2.0)


def test_mismatch_stats_by_hand():
    # Five real tokens, d = [log 2, 0, -log 4, log 3, log 0.5]; k3 = exp(d) - d - 1 per token:
    # [1 - log 2, 0, -0.75 + log 4, 2 - log 3, -0.5 - log 0.5] -> mean below.
    d = [math.log(2), 0.0, -math.log(4), math.log(3), math.log(0.5)]
    k3 = sum(math.exp(x) - x - 1 for x in d) / 5
    dropped = masked_importance_sampling(OLD, SAMPLER, MASK, "token", 2.5).loss_mask
    stats = mismatch_stats(OLD, SAMPLER, MASK, dropped)
    assert math.isclose(stats["sampler_kl_k3"].item(), k3, rel_tol=1e-5)
    assert math.isclose(stats["is_ratio_min"].item(), 0.25, rel_tol=1e-5)
    assert math.isclose(stats["is_ratio_max"].item(), 3.0, rel_tol=1e-5)
    # sorted ratios [0.25, 0.5, 1, 2, 3]: linear interpolation at 0.01*4 = 0.04 and 0.99*4 = 3.96.
    assert math.isclose(stats["is_ratio_p1"].item(), 0.25 + 0.04 * 0.25, rel_tol=1e-5)
    assert math.isclose(stats["is_ratio_p99"].item(), 2.0 + 0.96 * 1.0, rel_tol=1e-5)
    assert math.isclose(stats["is_masked_share"].item(), 2 / 5, rel_tol=1e-6)


def test_mismatch_stats_zero_when_sampler_equals_trainer():
    stats = mismatch_stats(OLD, OLD, MASK, MASK)
    assert stats["sampler_kl_k3"].item() == 0.0
    assert stats["is_ratio_min"].item() == stats["is_ratio_max"].item() == 1.0
    assert stats["is_masked_share"].item() == 0.0
