"""The one gradient-accumulation helper every method updates through.

A step's loss is defined over the GLOBAL batch (every micro-batch on every rank): the counts it is
normalised by are summed over ranks, each micro-batch's loss is its share of that global loss, and
the gradients are summed. DDP and FSDP2 average gradients over ranks, so each rank's loss is scaled
by the world size before backward; the result equals the gradient of one process holding the whole
batch (tests/trainers/test_equivalence.py). Non-final micro-batches skip the cross-rank reduction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from grpo import dist
from grpo.algo import LossNormalizer
from grpo.rollout import RolloutBatch
from grpo.trainers.logprob_passes import Stats, row_slices
from grpo.trainers.optim import apply_update
from grpo.trainers.parallel import gradient_sync
from grpo.trainers.state import TrainState


@dataclass(frozen=True)
class MicroBatchLoss:
    """A micro-batch's share of the global loss, its statistics averaged over its rows (`means`), and
    parts of the global loss that add up over micro-batches (`sums`, e.g. PPO's policy and value loss)."""

    loss: torch.Tensor
    means: Stats = field(default_factory=dict)
    sums: Stats = field(default_factory=dict)


LossFn = Callable[[slice, LossNormalizer], MicroBatchLoss]


def global_normalizer(num_rows: int, num_tokens: int, max_completion_length: int) -> LossNormalizer:
    """The loss normaliser of the global batch: rows and active tokens summed over every rank."""
    counts = dist.all_reduce_sum(torch.tensor([float(num_rows), float(num_tokens)], dtype=torch.float64))
    return LossNormalizer(max(int(counts[0]), 1), int(counts[1]), max_completion_length)


def accumulate_gradients(
    state: TrainState, num_rows: int, norm: LossNormalizer, loss_of: LossFn, rows_per_micro_batch: int | None = None
) -> Stats:
    """Backward of `loss_of(rows, norm)` over this rank's rows in micro-batches (of `optim.micro_batch_size`
    rows unless given), gradients reduced across ranks after the last one. Returns the global loss and
    the statistics (detached)."""
    slices = row_slices(num_rows, rows_per_micro_batch or state.config.optim.micro_batch_size)
    scale = float(dist.world_size())  # DDP and FSDP2 average gradients over ranks; the loss is a sum
    totals: Stats = {"loss": torch.zeros(())}
    for index, (rows, real) in enumerate(slices):
        with gradient_sync(state.trainable, enabled=index == len(slices) - 1):
            part = state.trainable(lambda rows=rows: _under_autocast(state, loss_of, rows, norm))
            (part.loss * (scale if real else 0.0)).backward()
        # a padding micro-batch counts for nothing, but adds its keys so every rank reports the same ones
        weight = (rows.stop - rows.start) / max(num_rows, 1) if real else 0.0
        total = scale if real else 0.0
        totals["loss"] = totals["loss"] + part.loss.detach() * total
        for key, value in part.sums.items():
            totals[key] = totals.get(key, 0.0) + value.detach() * total
        for key, value in part.means.items():
            totals[key] = totals.get(key, 0.0) + value.detach() * weight
    return totals


def _under_autocast(state: TrainState, loss_of: LossFn, rows: slice, norm: LossNormalizer) -> MicroBatchLoss:
    with state.autocast():
        return loss_of(rows, norm)


def update(
    state: TrainState, num_rows: int, norm: LossNormalizer, loss_of: LossFn, rows_per_micro_batch: int | None = None
) -> Stats:
    """Accumulate the step's gradients, then one optimiser update, skipped on every rank together
    when the loss on any rank is not finite (a NaN must not reach the weights)."""
    totals = accumulate_gradients(state, num_rows, norm, loss_of, rows_per_micro_batch)
    bad = dist.all_reduce_max(torch.tensor([float(not torch.isfinite(totals["loss"]))]))
    totals.update(apply_update(state.optim, state.parameters(), state.config.optim.max_grad_norm, not bool(bad[0])))
    return totals


def update_on_rollouts(state: TrainState, batch: RolloutBatch, loss_of: LossFn) -> Stats:
    """`update` over the rows of a rollout batch, normalised by the global completion and token counts."""
    norm = global_normalizer(batch.num_completions, int(batch.completion_mask.sum()),
                             state.config.rollout.max_new_tokens)
    return update(state, batch.num_completions, norm, loss_of)
