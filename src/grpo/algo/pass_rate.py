"""The unbiased pass@k estimator of Chen et al. (2021), "Evaluating Large Language Models Trained on
Code" (the Codex paper), section 2.1.

pass@k is the chance that at least one of k programs sampled for a problem passes its tests. Drawing
exactly k samples per problem and counting gives a high-variance estimate; instead n >= k samples are
drawn, c of them pass, and the estimate is the share of k-subsets of the n samples that hold at least
one passing one:

    pass@k = E_problems[ 1 - C(n - c, k) / C(n, k) ]

computed, as in the paper's numpy snippet, as the numerically stable product

    1 - C(n - c, k) / C(n, k) = 1 - prod_{i = n-c+1}^{n} (1 - k / i)     (1 when n - c < k)

pass@1 reduces to c / n, the plain share of passing samples.
"""

from __future__ import annotations

import torch
from torch import Tensor


def pass_at_k(num_correct: Tensor, num_samples: int, k: int) -> Tensor:
    """Per-problem unbiased pass@k: 1 - C(n - c, k) / C(n, k) (Chen et al. 2021, sec. 2.1; module docstring).

    Args:
        num_correct: (B,) integer tensor, c per problem: how many of its n samples passed, 0 <= c <= n.
        num_samples: n, samples drawn per problem (the same for every problem).
        k: the k of pass@k, 1 <= k <= n.

    Returns:
        (B,) float64 tensor of estimates in [0, 1]; the benchmark figure is their mean.
    """
    if not 1 <= k <= num_samples:
        raise ValueError(f"pass@k needs 1 <= k <= n (got k={k}, n={num_samples})")
    correct = num_correct.to(torch.float64).reshape(-1, 1)  # (B, 1)
    if bool(((correct < 0) | (correct > num_samples)).any()):
        raise ValueError(f"every correct count must lie in [0, n={num_samples}]")
    i = torch.arange(1, num_samples + 1, dtype=torch.float64, device=num_correct.device)  # (n,)
    in_product = i > num_samples - correct  # (B, n): the factors i = n-c+1 .. n
    factors = torch.where(in_product, 1.0 - k / i, torch.ones((), dtype=torch.float64))  # (B, n)
    estimate = 1.0 - factors.prod(dim=1)  # (B,)
    return torch.where(num_samples - correct.squeeze(1) < k, torch.ones_like(estimate), estimate)
