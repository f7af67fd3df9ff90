"""Importance-ratio levels: the log ratio log(pi / pi_old) each completion token carries.

Every level has the signature ``(logprobs (N,T), old_logprobs (N,T), completion_mask (N,T) bool)
-> log_ratio (N,T)`` and is registered in ``RATIO_LEVELS``. The policy loss exponentiates the result,
so a level only decides *which* ratio each token sees and how gradients flow through it.

Conventions: ``old_logprobs`` are the sampling policy's log-probs and are treated as constants
(detached); masked positions of the result are exactly 0, whatever the inputs hold there.
"""

from __future__ import annotations

import torch
from torch import Tensor

from grpo.algo.masked import masked_mean
from grpo.algo.registry import RATIO_LEVELS


def _zero_masked(values: Tensor, completion_mask: Tensor) -> Tensor:
    return torch.where(completion_mask, values, torch.zeros_like(values))


@RATIO_LEVELS.register("token")
def token_log_ratio(logprobs: Tensor, old_logprobs: Tensor, completion_mask: Tensor) -> Tensor:
    """Per-token log ratio, as in PPO and GRPO.

    Equation: log r_{i,t} = log pi_theta(o_{i,t} | q, o_{i,<t}) - log pi_old(o_{i,t} | q, o_{i,<t}).
    Paper: Schulman et al. 2017, "Proximal Policy Optimization Algorithms", Sec. 3 (r_t(theta));
    Shao et al. 2024, "DeepSeekMath", eq. 3.
    Shapes: logprobs, old_logprobs (N, T) float; completion_mask (N, T) bool -> (N, T).
    """
    return _zero_masked(logprobs - old_logprobs.detach(), completion_mask)


@RATIO_LEVELS.register("sequence")
def sequence_log_ratio(logprobs: Tensor, old_logprobs: Tensor, completion_mask: Tensor) -> Tensor:
    """Length-normalised sequence log ratio (GSPO), given to every token in GSPO-token form.

    Equation: log s_i = (1 / |o_i|) * sum_t (log pi_theta(o_{i,t}) - log pi_old(o_{i,t})), the log of
    the geometric mean of the token ratios; each token then carries
    log s_{i,t} = sg[log s_i] + log pi_theta(o_{i,t}) - sg[log pi_theta(o_{i,t})],
    whose value is log s_i and whose gradient is that of log pi_theta(o_{i,t}).
    Paper: Zheng et al. 2025, "Group Sequence Policy Optimization" (arXiv:2507.18071), Sec. 4
    (definition of s_i and the GSPO-token variant).
    Shapes: logprobs, old_logprobs (N, T) float; completion_mask (N, T) bool -> (N, T).
    Conventions: with a token-mean-per-sequence aggregation and equal advantages across the tokens of
    a completion, the gradient equals sequence-level GSPO's. Clipping the per-token value clips the
    sequence ratio, since every token of a completion holds the same value. A completion with no
    active tokens gets 0.
    """
    token_diff = logprobs - old_logprobs.detach()  # (N, T)
    seq_log_ratio = masked_mean(token_diff, completion_mask, dim=-1).unsqueeze(-1)  # (N, 1)
    # Zero first so a padded position holding -inf cannot produce NaN in logprobs - sg[logprobs].
    safe_logprobs = _zero_masked(logprobs, completion_mask)
    per_token = seq_log_ratio.detach() + safe_logprobs - safe_logprobs.detach()  # (N, T)
    return _zero_masked(per_token, completion_mask)
