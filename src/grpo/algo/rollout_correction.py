"""Off-policy correction for the gap between the sampler's and the trainer's probabilities.

When rollouts come from an inference engine (vLLM, other kernels, bf16), the tokens were drawn from
pi_sampler, not from the trainer's pi_old, although both hold the same weights. The policy gradient
then carries a bias that grows over long runs. Each token's importance ratio

    rho_t = pi_old(o_t) / pi_sampler(o_t) = exp(old_logprobs_t - sampler_logprobs_t)

(or, at sequence level, rho = prod_t rho_t over the completion's tokens, the same value on every
token of the row) re-weights the per-token policy loss:

    none       w_t = 1                                  (no correction; the loss is unchanged)
    truncated  w_t = min(rho_t, C)                      (truncated IS, TIS)
    masked     w_t = rho_t * 1[1/C <= rho_t <= C]       (masked IS, MIS: tokens or whole sequences
                                                         outside the band leave the loss)

References: Yao et al. 2025, "Your Efficient RL Framework Secretly Brings You Off-Policy RL Training"
(truncated importance sampling, token level, min(rho, C)); Liu et al. 2025, "When Speed Kills
Stability: Demystifying RL Collapse from the Training-Inference Mismatch" (masked importance
sampling at sequence level, rejecting sequences whose ratio leaves the band). TRL's
`vllm_importance_sampling_mode` and verl's rollout correction offer the same four variants.

Conventions: the weights are constants (no gradient flows through them; the inputs should be
detached); the sequence ratio is the product of the token ratios over the completion mask (not the
geometric mean); positions outside `completion_mask` get weight 0 in the masked variant and keep
their value elsewhere (the loss aggregation masks them anyway). Every function is registered in
``ROLLOUT_CORRECTIONS`` with the signature
``(old_logprobs (N,T), sampler_logprobs (N,T), completion_mask (N,T) bool, level, cap)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from grpo.algo.registry import ROLLOUT_CORRECTION_LEVELS, ROLLOUT_CORRECTIONS


@dataclass(frozen=True)
class CorrectionOutput:
    """Per-token loss weights and the mask of tokens that stay in the loss.

    Attributes:
        weights: (N, T) float32, multiplies the per-token policy loss.
        loss_mask: (N, T) bool, `completion_mask` with the tokens (or rows) the correction drops
            set to False; the very `completion_mask` object when nothing can be dropped.
    """

    weights: Tensor
    loss_mask: Tensor


@ROLLOUT_CORRECTION_LEVELS.register("token")
def token_log_ratio(old_logprobs: Tensor, sampler_logprobs: Tensor, completion_mask: Tensor) -> Tensor:
    """Per-token log importance ratio of the trainer's old policy to the sampler.

    Equation: log rho_t = log pi_old(o_t) - log pi_sampler(o_t).
    Shapes: (N, T) each -> (N, T); 0 outside `completion_mask`.
    """
    return (old_logprobs - sampler_logprobs) * completion_mask


@ROLLOUT_CORRECTION_LEVELS.register("sequence")
def sequence_log_ratio(old_logprobs: Tensor, sampler_logprobs: Tensor, completion_mask: Tensor) -> Tensor:
    """Per-sequence log importance ratio, the sum of its tokens' log-ratios, broadcast to every token.

    Equation: log rho_i = sum_t m_it (log pi_old(o_it) - log pi_sampler(o_it)), i.e. rho_i is the
    product of the token ratios (Liu et al. 2025's sequence-level ratio).
    Shapes: (N, T) each -> (N, T), every column of row i holding log rho_i.
    """
    per_row = token_log_ratio(old_logprobs, sampler_logprobs, completion_mask).sum(dim=-1, keepdim=True)  # (N, 1)
    return per_row.expand_as(old_logprobs)


@ROLLOUT_CORRECTIONS.register("none")
def no_correction(
    old_logprobs: Tensor, sampler_logprobs: Tensor, completion_mask: Tensor, level: str, cap: float
) -> CorrectionOutput:
    """No correction: weight 1 everywhere and the mask unchanged (x * 1.0 is exactly x, so the loss is too)."""
    return CorrectionOutput(torch.ones_like(old_logprobs, dtype=torch.float32), completion_mask)


@ROLLOUT_CORRECTIONS.register("truncated")
def truncated_importance_sampling(
    old_logprobs: Tensor, sampler_logprobs: Tensor, completion_mask: Tensor, level: str, cap: float
) -> CorrectionOutput:
    """Truncated importance sampling (TIS): weight each token by its ratio, capped at C.

    Equation: w = min(rho, C), rho = pi_old / pi_sampler at token or sequence level.
    Reference: Yao et al. 2025, "Your Efficient RL Framework Secretly Brings You Off-Policy RL
    Training" (token-level TIS).
    Shapes: (N, T) each -> weights (N, T); the mask is returned unchanged.
    """
    log_ratio = ROLLOUT_CORRECTION_LEVELS.get(level)(old_logprobs, sampler_logprobs, completion_mask)
    weights = torch.exp(log_ratio.float()).clamp(max=cap)  # exp(+inf) = inf is capped to C
    return CorrectionOutput(weights, completion_mask)


@ROLLOUT_CORRECTIONS.register("masked")
def masked_importance_sampling(
    old_logprobs: Tensor, sampler_logprobs: Tensor, completion_mask: Tensor, level: str, cap: float
) -> CorrectionOutput:
    """Masked importance sampling (MIS): drop tokens (or whole sequences) whose ratio leaves [1/C, C].

    Equation: w = rho * 1[1/C <= rho <= C]; the loss mask becomes completion_mask & (1/C <= rho <= C).
    Reference: Liu et al. 2025, "When Speed Kills Stability: Demystifying RL Collapse from the
    Training-Inference Mismatch" (sequence-level masked IS).
    Shapes: (N, T) each -> weights (N, T), loss_mask (N, T) bool.
    """
    log_ratio = ROLLOUT_CORRECTION_LEVELS.get(level)(old_logprobs, sampler_logprobs, completion_mask).float()
    bound = torch.log(torch.tensor(cap, dtype=torch.float32))
    keep = completion_mask & (log_ratio.abs() <= bound)  # (N, T)
    return CorrectionOutput(torch.exp(log_ratio) * keep, keep)


def mismatch_stats(
    old_logprobs: Tensor, sampler_logprobs: Tensor, completion_mask: Tensor, loss_mask: Tensor
) -> dict[str, Tensor]:
    """How far the sampler is from the trainer on the sampled tokens, for the metrics of every step.

    Equations, over the tokens where `completion_mask` is True:
        sampler_kl_k3 = mean_t [ exp(d_t) - d_t - 1 ],  d_t = log pi_old(o_t) - log pi_sampler(o_t)
            (k3 estimate of KL(pi_sampler || pi_old) from tokens drawn by the sampler; Schulman 2020)
        is_ratio_{min,max,p1,p99} = extremes and 1st / 99th percentiles of exp(d_t)
        is_masked_share = share of those tokens that `loss_mask` drops.
    Shapes: (N, T) each -> 0-d float32 tensors (zeros when no token counts); computed in float64.
    """
    mask = completion_mask.bool()
    d = (old_logprobs.double() - sampler_logprobs.double())[mask]  # (tokens,) float64: k3 of tiny gaps stays >= 0
    if d.numel() == 0:
        zero = torch.zeros(())
        return {key: zero for key in ("sampler_kl_k3", "is_ratio_min", "is_ratio_max", "is_ratio_p1",
                                      "is_ratio_p99", "is_masked_share")}
    ratio = torch.exp(d)
    quantiles = torch.quantile(ratio, torch.tensor([0.01, 0.99], dtype=ratio.dtype, device=ratio.device))
    dropped = (mask & ~loss_mask.bool()).sum().float() / mask.sum().float()
    values = {"sampler_kl_k3": (ratio - d - 1.0).mean(), "is_ratio_min": ratio.min(), "is_ratio_max": ratio.max(),
              "is_ratio_p1": quantiles[0], "is_ratio_p99": quantiles[1]}
    return {**{key: value.float() for key, value in values.items()}, "is_masked_share": dropped}
