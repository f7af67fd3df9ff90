"""One DPO step: pairwise preference optimisation against the frozen reference policy.

    1. pairs (prompt, chosen, rejected): from a preference JSONL (`dpo.source: offline`) or the
       policy's own ranked samples (online)                                    -> grpo.trainers.dpo_pairs
    2. the reference's log-probs of both responses, without gradient             -> reference_logprobs
    3. log-ratios h_w = log pi(y_w|x) - log pi_ref(y_w|x), h_l likewise (sums over tokens)
    4. loss from PREFERENCE_LOSSES[dpo.loss](h_w, h_l, dpo.beta), mean over all pairs -> update(dpo_loss)

Paper: Rafailov et al. 2023, "Direct Preference Optimization". With LoRA the reference is the policy
with its adapter off. The `algo` keys of the clipped objective do not apply (and are refused).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from grpo import dist
from grpo.algo import PREFERENCE_LOSSES, LossNormalizer, masked_sum
from grpo.models.logprobs import completion_logprobs
from grpo.tasks.api import Example
from grpo.trainers.accumulate import MicroBatchLoss, global_normalizer, update
from grpo.trainers.dpo_pairs import Pairs, PairSource
from grpo.trainers.logprob_passes import Stats, reference_logprobs
from grpo.trainers.state import TrainState

# Pairs are scored with the policy's own distribution (temperature 1), whatever the sampler used.
DPO_TEMPERATURE = 1.0


@dataclass(frozen=True)
class ScoredPairs:
    """Pairs with the reference's (2K, T) log-probs of their responses."""

    pairs: Pairs
    ref: torch.Tensor


def dpo_loss(state: TrainState, data: ScoredPairs, pair_rows: slice, norm: LossNormalizer) -> MicroBatchLoss:
    """Preference loss of pairs `pair_rows`, summed and divided by the global number of pairs."""
    batch, K = data.pairs.batch, data.pairs.batch.num_completions // 2
    chosen = torch.arange(pair_rows.start, pair_rows.stop)  # (k,)
    rows = torch.cat([chosen, chosen + K])  # the chosen rows, then their rejected rows
    input_ids, attention_mask = batch.sequences()
    logprobs, _ = completion_logprobs(state.policy, input_ids[rows], attention_mask[rows],
                                      batch.completion_ids.shape[1], DPO_TEMPERATURE)
    logratios = masked_sum(logprobs - data.ref[rows], batch.completion_mask[rows], dim=1)  # (2k,)
    k = len(chosen)
    losses, stats = PREFERENCE_LOSSES.get(state.config.dpo.loss)(logratios[:k], logratios[k:], state.config.dpo.beta)
    return MicroBatchLoss(losses.sum() / norm.num_sequences, {key: value for key, value in vars(stats).items()})


def dpo_update(state: TrainState, pairs: Pairs) -> Stats:
    """Gradients of the preference loss over every rank's pairs, then one optimiser update."""
    data = ScoredPairs(pairs, reference_logprobs(state, pairs.batch, DPO_TEMPERATURE))
    norm = global_normalizer(pairs.num_pairs, 0, state.config.rollout.max_new_tokens)
    pairs_per_micro_batch = max(1, state.config.optim.micro_batch_size // 2)
    return update(state, pairs.num_pairs, norm, lambda rows, norm: dpo_loss(state, data, rows, norm),
                  pairs_per_micro_batch)


def dpo_step(state: TrainState, source: PairSource, examples: list[Example]) -> tuple[Stats, list[dict[str, object]]]:
    """One DPO iteration: this rank's pairs, then one update unless no rank has a pair."""
    pairs, stats = source(examples)
    total = int(dist.all_reduce_sum(torch.tensor([float(pairs.num_pairs)]))[0])
    stats = {**stats, "pairs": torch.tensor(float(pairs.num_pairs))}
    if total == 0:  # no group anywhere had a reward gap: nothing to prefer, no update this step
        return stats, []
    return {**stats, **dpo_update(state, pairs)}, pairs.records
