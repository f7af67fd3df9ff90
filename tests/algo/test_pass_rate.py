"""The unbiased pass@k estimator against numbers worked out by hand from 1 - C(n-c, k) / C(n, k)."""

from __future__ import annotations

import pytest
import torch

from grpo.algo import pass_at_k


@pytest.mark.parametrize(("n", "c", "k", "expected"), [
    (5, 2, 2, 0.7),  # 1 - C(3,2)/C(5,2) = 1 - 3/10
    (4, 1, 3, 0.75),  # 1 - C(3,3)/C(4,3) = 1 - 1/4
    (10, 3, 1, 0.3),  # pass@1 is c/n
    (6, 2, 3, 0.8),  # 1 - C(4,3)/C(6,3) = 1 - 4/20
    (5, 0, 2, 0.0),  # nothing passed
    (5, 4, 2, 1.0),  # n - c = 1 < k: every pair holds a passing sample
    (8, 8, 8, 1.0),
])
def test_matches_hand_computed_values(n, c, k, expected):
    assert pass_at_k(torch.tensor([c]), n, k).tolist() == pytest.approx([expected])


def test_per_problem_values_and_their_mean():
    estimates = pass_at_k(torch.tensor([0, 2, 4]), 5, 2)  # (0, 0.7, 1.0)
    assert estimates.shape == (3,) and estimates.dtype == torch.float64
    assert float(estimates.mean()) == pytest.approx(1.7 / 3)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="1 <= k <= n"):
        pass_at_k(torch.tensor([1]), 4, 5)
    with pytest.raises(ValueError, match=r"\[0, n=4\]"):
        pass_at_k(torch.tensor([5]), 4, 2)
