"""Loss aggregations: reduce a per-token loss (n, T) to the scalar that is back-propagated.

Every aggregation has the signature ``(per_token_loss (n,T), completion_mask (n,T) bool,
norm: LossNormalizer) -> 0-d Tensor`` and is registered in ``LOSS_AGGREGATIONS``.

``n`` is the size of the micro-batch being reduced, while ``norm`` holds counts for the GLOBAL batch
(all micro-batches, all ranks, of one optimiser step). Dividing by global counts makes aggregation
additive: for "seq_mean_token_mean", "token_mean" and "seq_mean_token_sum_norm", the sum over
micro-batches of their aggregates equals the aggregate of the full batch, so gradient accumulation
and data parallelism must sum (not average) the micro-batch losses. "bnpo" is the deliberate
exception, normalising by the tokens of the micro-batch it is given (see its docstring).

Conventions: masked positions are ignored even if they hold NaN/inf; a completion with no active
tokens contributes 0 (but is still counted in ``num_sequences``).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from grpo.algo.masked import masked_sum
from grpo.algo.registry import LOSS_AGGREGATIONS


@dataclass(frozen=True)
class LossNormalizer:
    """Global batch counts that the aggregations divide by.

    Fields:
        num_sequences: completions in the whole batch of the optimiser step (>= 1).
        num_tokens: active completion tokens in the whole batch (>= 0; 0 gives a zero loss).
        max_completion_length: the configured generation budget L (Dr. GRPO's constant), >= 1.
    """

    num_sequences: int
    num_tokens: int
    max_completion_length: int

    def __post_init__(self) -> None:
        if self.num_sequences < 1:
            raise ValueError(f"num_sequences must be >= 1, got {self.num_sequences}")
        if self.num_tokens < 0:
            raise ValueError(f"num_tokens must be >= 0, got {self.num_tokens}")
        if self.max_completion_length < 1:
            raise ValueError(f"max_completion_length must be >= 1, got {self.max_completion_length}")


@LOSS_AGGREGATIONS.register("seq_mean_token_mean")
def seq_mean_token_mean(per_token_loss: Tensor, completion_mask: Tensor, norm: LossNormalizer) -> Tensor:
    """Mean over each completion's tokens, then mean over completions (GRPO's original reduction).

    Equation: loss = (1 / num_sequences) * sum_i (1 / |o_i|) * sum_t l_{i,t}.
    Paper: Shao et al. 2024, "DeepSeekMath", eq. 3 (the 1/G sum_i 1/|o_i| sum_t in the objective).
    Shapes: per_token_loss (n, T), completion_mask (n, T) bool -> 0-d.
    Conventions: |o_i| is clamped to 1, so an empty completion contributes 0.
    """
    per_sequence_sum = masked_sum(per_token_loss, completion_mask, dim=-1)  # (n,)
    lengths = completion_mask.sum(dim=-1).clamp(min=1)  # (n,)
    return (per_sequence_sum / lengths).sum() / norm.num_sequences


@LOSS_AGGREGATIONS.register("token_mean")
def token_mean(per_token_loss: Tensor, completion_mask: Tensor, norm: LossNormalizer) -> Tensor:
    """Mean over every active token of the batch, so longer completions weigh more (DAPO).

    Equation: loss = sum_{i,t} l_{i,t} / num_tokens.
    Paper: Yu et al. 2025, "DAPO" (arXiv:2503.14476), Sec. 3.3 "Token-Level Policy Gradient Loss".
    Shapes: per_token_loss (n, T), completion_mask (n, T) bool -> 0-d.
    Conventions: num_tokens is clamped to 1, so a batch without tokens gives 0.
    """
    return masked_sum(per_token_loss, completion_mask) / max(norm.num_tokens, 1)


@LOSS_AGGREGATIONS.register("seq_mean_token_sum_norm")
def seq_mean_token_sum_norm(per_token_loss: Tensor, completion_mask: Tensor, norm: LossNormalizer) -> Tensor:
    """Token sum divided by a constant, removing the length bias of per-completion means (Dr. GRPO).

    Equation: loss = sum_{i,t} l_{i,t} / (num_sequences * max_completion_length).
    Paper: Liu et al. 2025, "Understanding R1-Zero-Like Training: A Critical Perspective"
    (arXiv:2503.20783), Dr. GRPO objective (1/|o_i| replaced by a constant).
    Shapes: per_token_loss (n, T), completion_mask (n, T) bool -> 0-d.
    """
    return masked_sum(per_token_loss, completion_mask) / (norm.num_sequences * norm.max_completion_length)


@LOSS_AGGREGATIONS.register("bnpo")
def bnpo(per_token_loss: Tensor, completion_mask: Tensor, norm: LossNormalizer) -> Tensor:
    """Token mean over the micro-batch it is given, weighted by that micro-batch's share of sequences.

    Equation: loss = (sum_{i,t} l_{i,t} / max(1, local active tokens)) * (n / num_sequences).
    Reference: TRL ``GRPOConfig(loss_type="bnpo")``: normalise by the active tokens of the local
    batch. The weight n / num_sequences stands in for TRL's division by the number of accumulation
    steps, so micro-batches combine by their share of the batch: with k equal-sized micro-batches it
    is (1/k) * sum of their token means, and with one micro-batch it equals "token_mean".
    Unlike the other aggregations the result depends on how the batch is split into micro-batches.
    Shapes: per_token_loss (n, T), completion_mask (n, T) bool -> 0-d.
    """
    local_tokens = completion_mask.sum().clamp(min=1)
    share = per_token_loss.shape[0] / norm.num_sequences
    return masked_sum(per_token_loss, completion_mask) / local_tokens * share
