"""Masked reductions: hand numbers, fully masked rows, and NaN in padded positions."""

import math

import torch

from grpo.algo.masked import (
    masked_mean,
    masked_moments,
    masked_sum,
    masked_var,
    masked_whiten,
    whiten_with_moments,
)

NAN = float("nan")


def test_masked_sum_and_mean_ignore_masked_entries_even_nan():
    values = torch.tensor([[1.0, 2.0, NAN], [4.0, NAN, NAN]])
    mask = torch.tensor([[True, True, False], [True, False, False]])
    # Row sums: 1 + 2 = 3 and 4; total 7 over 3 kept entries.
    assert torch.equal(masked_sum(values, mask, dim=1), torch.tensor([3.0, 4.0]))
    assert masked_sum(values, mask).item() == 7.0
    # Row means: 3 / 2 = 1.5 and 4 / 1 = 4; overall mean 7 / 3.
    assert torch.equal(masked_mean(values, mask, dim=1), torch.tensor([1.5, 4.0]))
    assert math.isclose(masked_mean(values, mask).item(), 7.0 / 3.0, rel_tol=1e-6)


def test_masked_mean_of_fully_masked_row_is_zero_not_nan():
    values = torch.tensor([[5.0, 7.0], [NAN, NAN]])
    mask = torch.tensor([[True, True], [False, False]])
    # Row 0: (5 + 7) / 2 = 6; row 1 keeps nothing: sum 0 over a count clamped to 1 gives 0.
    assert torch.equal(masked_mean(values, mask, dim=1), torch.tensor([6.0, 0.0]))
    assert masked_mean(values, torch.zeros_like(mask)).item() == 0.0


def test_masked_mean_gradient_is_finite_with_nan_padding():
    values = torch.tensor([1.0, 3.0, NAN], requires_grad=True)
    mask = torch.tensor([True, True, False])
    masked_mean(values, mask).backward()
    # d mean / d v_j = 1 / 2 for the two kept entries, 0 (not NaN) for the padded one.
    assert torch.equal(values.grad, torch.tensor([0.5, 0.5, 0.0]))


def test_masked_var_sample_and_population():
    values = torch.tensor([1.0, 2.0, 3.0, 100.0])
    mask = torch.tensor([True, True, True, False])
    # Kept [1, 2, 3]: mean 2, squared deviations 1 + 0 + 1 = 2; sample var 2 / 2 = 1, population 2 / 3.
    assert math.isclose(masked_var(values, mask, unbiased=True).item(), 1.0, rel_tol=1e-6)
    assert math.isclose(masked_var(values, mask, unbiased=False).item(), 2.0 / 3.0, rel_tol=1e-6)


def test_masked_whiten_hand_numbers():
    values = torch.tensor([1.0, 2.0, 3.0, 100.0])
    mask = torch.tensor([True, True, True, False])
    # Mean 2, unbiased var 1 -> (v - 2) / sqrt(1 + 1e-8) = [-1, 0, 1]; the masked entry becomes 0.
    expected = torch.tensor([-1.0, 0.0, 1.0, 0.0])
    assert torch.allclose(masked_whiten(values, mask), expected, atol=1e-6)
    # shift_mean=False adds the mean back: [-1, 0, 1] + 2 = [1, 2, 3] (std 1 already, so unchanged).
    kept = torch.tensor([1.0, 2.0, 3.0, 0.0])
    assert torch.allclose(masked_whiten(values, mask, shift_mean=False), kept, atol=1e-6)


def test_masked_whiten_scales_to_unit_variance():
    values = torch.tensor([0.0, 4.0, 8.0])
    mask = torch.tensor([True, True, True])
    # Mean 4, unbiased var (16 + 0 + 16) / 2 = 16, std 4 -> [-1, 0, 1].
    assert torch.allclose(masked_whiten(values, mask), torch.tensor([-1.0, 0.0, 1.0]), atol=1e-6)


def test_whiten_with_moments_by_hand_and_summed_over_parts():
    values = torch.tensor([1.0, 2.0, 3.0, 4.0])
    mask = torch.tensor([True, True, True, False])
    moments = masked_moments(values, mask)
    # n = 3, sum = 6, sum of squares = 14 -> mean 2, unbiased var (14 - 3*4) / 2 = 1
    torch.testing.assert_close(moments, torch.tensor([3.0, 6.0, 14.0], dtype=torch.float64))
    torch.testing.assert_close(whiten_with_moments(values, mask, moments, eps=0.0), torch.tensor([-1.0, 0.0, 1.0, 0.0]))
    # two parts (as on two ranks) whitened with their summed moments equal the whole batch's masked_whiten
    x = torch.randn(6, 5, generator=torch.Generator().manual_seed(0))
    m = torch.rand(6, 5, generator=torch.Generator().manual_seed(1)) > 0.3
    total = masked_moments(x[:2], m[:2]) + masked_moments(x[2:], m[2:])
    parts = torch.cat([whiten_with_moments(x[:2], m[:2], total), whiten_with_moments(x[2:], m[2:], total)])
    torch.testing.assert_close(parts, masked_whiten(x, m), atol=1e-6, rtol=1e-5)
