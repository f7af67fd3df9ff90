"""Forward passes that turn rollouts into per-token log-probs: with gradient for the loss, without for
the old, reference and sampler-check passes. Every pass runs under the run's autocast.

Micro-batches come from `row_slices`, which gives every rank the same number of them (a rank with
fewer rows repeats a row at weight 0): under FSDP2 each forward is a collective, so ranks holding
different numbers of rows (dynamic sampling, online DPO) must still run in lockstep.
"""

from __future__ import annotations

import math

import torch

from grpo import dist
from grpo.models.logprobs import completion_logprobs, grouped_completion_logprobs
from grpo.rollout import RolloutBatch
from grpo.trainers.state import TrainState

Stats = dict[str, torch.Tensor]


def row_slices(num_rows: int, size: int) -> list[tuple[slice, bool]]:
    """(rows, real) micro-batches of at most `size` rows, as many on every rank as on the busiest.

    The extra ones (real = False) repeat the first row; their results must be given weight 0.
    """
    own = math.ceil(num_rows / size)
    count = int(dist.all_reduce_max(torch.tensor([float(own)]))[0])
    slices = [(slice(start, min(start + size, num_rows)), True) for start in range(0, num_rows, size)]
    return slices + [(slice(0, 1), False)] * (count - own)


def rows_logprobs(
    model: torch.nn.Module, batch: RolloutBatch, rows: slice, temperature: float, entropy_grad: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, T) log-probs and entropies of rows `rows`, each prompt forwarded once per group.

    An entropy bonus needs the entropy's gradient, which only the plain full-logits path keeps.
    """
    if entropy_grad:
        input_ids, attention_mask = batch.sequences()
        T = batch.completion_ids.shape[1]
        return completion_logprobs(model, input_ids[rows], attention_mask[rows], T, temperature, entropy_grad=True)
    return grouped_completion_logprobs(model, batch.prompt_ids[rows], batch.prompt_mask[rows],
                                       batch.completion_ids[rows], batch.completion_mask[rows],
                                       batch.group_size, temperature)


@torch.no_grad()
def policy_logprobs(state: TrainState, model: torch.nn.Module, batch: RolloutBatch, temperature: float) -> torch.Tensor:
    """(N, T) log-probs of the completion tokens under `model`, without gradient, 0 on padding."""
    parts = []
    with state.autocast():
        for rows, real in row_slices(batch.num_completions, state.config.optim.micro_batch_size):
            logprobs = rows_logprobs(model, batch, rows, temperature)[0]
            if real:
                parts.append(logprobs)
    if not parts:
        return torch.zeros(batch.completion_mask.shape, device=batch.completion_ids.device)
    return torch.cat(parts) * batch.completion_mask


def reference_logprobs(state: TrainState, batch: RolloutBatch, temperature: float) -> torch.Tensor | None:
    """(N, T) log-probs under the frozen reference; None when the run has none (beta = 0).

    With LoRA the reference is the base model: the policy with its adapter switched off.
    """
    if state.adapter_reference:
        with state.policy.disable_adapter():
            return policy_logprobs(state, state.policy, batch, temperature)
    if state.reference is None:
        return None
    return policy_logprobs(state, state.reference, batch, temperature)
