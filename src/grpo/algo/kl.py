"""Per-token estimators of KL(pi_theta || pi_ref) from tokens sampled by pi_theta.

Every estimator has the signature ``(logprobs (N,T), ref_logprobs (N,T)) -> (N,T)`` and is registered
in ``KL_ESTIMATORS``. With log r = ref_logprobs - logprobs = log(pi_ref / pi_theta) at a sampled token:
k1 = -log r (unbiased, can be negative, high variance), k2 = (log r)^2 / 2 (biased, low variance,
non-negative), k3 = (r - 1) - log r (unbiased, non-negative, low variance).
Reference: Schulman 2020, "Approximating KL Divergence", http://joschu.net/blog/kl-approx.html.

Conventions: the estimators apply no mask; `masked_kl` is what the trainers call: it sets the
log-ratio to 0 where the mask is off before any `exp`, so a padded position can never turn into
0 * inf = NaN in backward. The value is an estimate per sampled token; only its expectation under
pi_theta is the KL.
"""

from __future__ import annotations

import torch
from torch import Tensor

from grpo.algo.registry import KL_ESTIMATORS

KL_LOG_RATIO_BOUND = 20.0  # |log(pi_ref / pi_theta)| is clamped here inside k3's exp (as verl does)


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
    Conventions: non-negative because exp(x) >= 1 + x; the log-ratio is clamped to [-20, 20]
    (`KL_LOG_RATIO_BOUND`, as verl does) so one far-off token cannot overflow exp in fp32 or bf16;
    exact for every ratio within e^20.
    """
    log_r = (ref_logprobs - logprobs).clamp(-KL_LOG_RATIO_BOUND, KL_LOG_RATIO_BOUND)
    return torch.exp(log_r) - log_r - 1.0


def masked_kl(estimator: str, logprobs: Tensor, ref_logprobs: Tensor, completion_mask: Tensor) -> Tensor:
    """Per-token KL estimate, exactly 0 (value and gradient) where `completion_mask` is False.

    Where the mask is off the reference log-prob is replaced by the policy's own (detached), so the
    log-ratio there is 0 before any `exp`: padded positions hold arbitrary log-probs (the reference's
    are 0, the policy's may be -95) and would otherwise overflow and give NaN gradients.
    Shapes: logprobs, ref_logprobs (N, T) float, completion_mask (N, T) bool -> (N, T).
    """
    ref = torch.where(completion_mask, ref_logprobs, logprobs.detach())
    return KL_ESTIMATORS.get(estimator)(logprobs, ref) * completion_mask
