"""Per-token estimators of KL(pi_theta || pi_ref) from tokens sampled by pi_theta.

Every estimator has the signature ``(logprobs (N,T), ref_logprobs (N,T)) -> (N,T)`` and is registered
in ``KL_ESTIMATORS``. With log r = ref_logprobs - logprobs = log(pi_ref / pi_theta) at a sampled token:
k1 = -log r (unbiased, can be negative, high variance), k2 = (log r)^2 / 2 (biased, low variance,
non-negative), k3 = (r - 1) - log r (unbiased, non-negative, low variance).
Reference: Schulman 2020, "Approximating KL Divergence", http://joschu.net/blog/kl-approx.html.

Conventions: no mask is applied here; the loss aggregation masks the result. Padded positions must
therefore hold finite log-probs (any finite value), or their inf/NaN would reach the gradient.
The value is an estimate per sampled token; only its expectation under pi_theta is the KL.
"""

from __future__ import annotations

import torch
from torch import Tensor

from grpo.algo.registry import KL_ESTIMATORS


@KL_ESTIMATORS.register("k1")
def kl_k1(logprobs: Tensor, ref_logprobs: Tensor) -> Tensor:
    """Naive estimator: the log ratio of policy to reference.

    Equation: k1 = log pi_theta(o_t) - log pi_ref(o_t).
    Reference: Schulman 2020, "Approximating KL Divergence" (k1).
    Shapes: logprobs, ref_logprobs (N, T) -> (N, T).
    """
    return logprobs - ref_logprobs


@KL_ESTIMATORS.register("k2")
def kl_k2(logprobs: Tensor, ref_logprobs: Tensor) -> Tensor:
    """Squared-log-ratio estimator: biased, but low variance and never negative.

    Equation: k2 = 0.5 * (log pi_theta(o_t) - log pi_ref(o_t))^2.
    Reference: Schulman 2020, "Approximating KL Divergence" (k2).
    Shapes: logprobs, ref_logprobs (N, T) -> (N, T).
    """
    return 0.5 * (logprobs - ref_logprobs) ** 2


@KL_ESTIMATORS.register("k3")
def kl_k3(logprobs: Tensor, ref_logprobs: Tensor) -> Tensor:
    """Unbiased, non-negative estimator used by GRPO's KL penalty.

    Equation: k3 = pi_ref / pi_theta - log(pi_ref / pi_theta) - 1
                 = exp(ref_logprobs - logprobs) - (ref_logprobs - logprobs) - 1.
    Reference: Schulman 2020, "Approximating KL Divergence" (k3); Shao et al. 2024, "DeepSeekMath",
    eq. 4.
    Shapes: logprobs, ref_logprobs (N, T) -> (N, T).
    Conventions: non-negative because exp(x) >= 1 + x; no clamping of the exponent (verl clamps it
    to [-20, 20]; we do not, so values are exact).
    """
    log_r = ref_logprobs - logprobs
    return torch.exp(log_r) - log_r - 1.0
