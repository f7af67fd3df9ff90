"""Preference pairs for DPO: read from a JSONL file (offline) or built from the policy's own samples.

Online pairs follow Guo et al. 2024, "Direct Language Model Alignment from Online AI Feedback"
(OAIF), with the verifiable reward as the judge: the best vs the worst completion of each group,
ranked by the reward; groups whose rewards are all equal give no pair.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerBase

from grpo import dist
from grpo.rollout import RolloutBatch
from grpo.tasks.api import Example
from grpo.tasks.pairs import preference_pairs
from grpo.trainers.logprob_passes import Stats
from grpo.trainers.rollout_phase import rollout_phase
from grpo.trainers.state import TrainState


@dataclass(frozen=True)
class Pairs:
    """K preference pairs as one (2K)-row batch: rows 0..K-1 chosen, rows K..2K-1 rejected (same prompts).

    `real` is False for a stand-in pair (two arbitrary completions) that a rank without pairs runs at
    weight 0, so that it still takes part in the step's collectives.
    """

    batch: RolloutBatch
    records: list[dict[str, object]]  # a few (prompt, chosen, rejected) for samples.jsonl
    real: bool = True

    @property
    def num_pairs(self) -> int:
        """K, the pairs that count (0 for a stand-in)."""
        return self.batch.num_completions // 2 if self.real else 0


PairSource = Callable[[list[Example]], tuple[Pairs, Stats]]


def take_rows(batch: RolloutBatch, rows: torch.Tensor) -> RolloutBatch:
    """The rows `rows` (long indices) of `batch` as a batch of group size 1."""
    rows = rows.to(batch.completion_ids.device)
    return RolloutBatch(batch.prompt_ids[rows], batch.prompt_mask[rows], batch.completion_ids[rows],
                        batch.completion_mask[rows], batch.sampler_logprobs[rows], batch.truncated[rows], 1)


def best_and_worst(rewards: torch.Tensor, valid: torch.Tensor, group_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Row indices (K,) of the highest- and lowest-reward valid completion of every group that has a gap.

    Ties go to the first row of the group; groups whose valid rewards are all equal give no pair.
    """
    grouped = rewards.reshape(-1, group_size)  # (B, G)
    ok = valid.reshape(-1, group_size)
    inf = torch.full_like(grouped, float("inf"))
    best = torch.where(ok, grouped, -inf).argmax(dim=1)  # (B,)
    worst = torch.where(ok, grouped, inf).argmin(dim=1)
    gap = grouped.gather(1, best[:, None]) > grouped.gather(1, worst[:, None])  # (B, 1)
    groups = torch.nonzero(gap.squeeze(1) & (ok.sum(1) >= 2)).squeeze(1)  # (K,)
    offsets = groups * group_size
    return offsets + best[groups], offsets + worst[groups]


def online_pairs(state: TrainState) -> PairSource:
    """Pairs from the policy's own samples: best vs worst of each group, ranked by the reward."""

    def source(examples: list[Example]) -> tuple[Pairs, Stats]:
        scored, stats = rollout_phase(state, examples)
        batch = scored.batch
        chosen, rejected = best_and_worst(scored.rewards, scored.valid, batch.group_size)
        if chosen.numel() == 0:  # no group had a reward gap: a stand-in pair keeps the ranks in step
            return Pairs(take_rows(batch, torch.tensor([0, min(1, batch.num_completions - 1)])), [], False), stats
        records = [{"prompt": examples[int(c) // batch.group_size].prompt, "chosen": scored.texts[int(c)],
                    "rejected": scored.texts[int(r)]} for c, r in zip(chosen[:4], rejected[:4])]
        return Pairs(take_rows(batch, torch.cat([chosen, rejected])), records), stats

    return source


def read_pairs(path: Path) -> list[dict[str, str]]:
    """The (prompt, chosen, rejected) records of a preference file; problems fail naming file:line."""
    return preference_pairs(path)


def encode_pairs(tokenizer: PreTrainedTokenizerBase, pairs: list[dict[str, str]], device: torch.device) -> Pairs:
    """Tokenise pairs into chosen-then-rejected rows: prompts left-padded, responses + EOS right-padded."""
    prompts = [tokenizer(pair["prompt"])["input_ids"] for pair in pairs] * 2
    responses = [tokenizer(pair[key], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
                 for key in ("chosen", "rejected") for pair in pairs]
    P, T, n = max(map(len, prompts)), max(map(len, responses)), len(prompts)
    prompt_ids = torch.full((n, P), tokenizer.pad_token_id, dtype=torch.long)  # (2K, P)
    completion_ids = torch.full((n, T), tokenizer.pad_token_id, dtype=torch.long)  # (2K, T)
    for row, (prompt, response) in enumerate(zip(prompts, responses)):
        prompt_ids[row, P - len(prompt):] = torch.tensor(prompt)
        completion_ids[row, : len(response)] = torch.tensor(response)
    prompt_mask = torch.arange(P) >= P - torch.tensor(list(map(len, prompts)))[:, None]
    completion_mask = torch.arange(T) < torch.tensor(list(map(len, responses)))[:, None]
    batch = RolloutBatch(prompt_ids.to(device), prompt_mask.to(device), completion_ids.to(device),
                         completion_mask.to(device), torch.zeros(n, T, device=device),
                         torch.zeros(n, dtype=torch.bool, device=device), 1)
    return Pairs(batch, [dict(pair) for pair in pairs[:4]])


def offline_pairs(state: TrainState, path: Path, seed: int) -> PairSource:
    """Pairs from a preference JSONL, this rank's share of `rollout.prompts_per_step` per step,
    reshuffled every epoch (the same order on every rank)."""
    records, rng = read_pairs(path), random.Random(seed)
    order: list[int] = []
    device = next(state.policy.parameters()).device

    def source(examples: list[Example]) -> tuple[Pairs, Stats]:
        drawn, share = [], len(examples)
        while len(drawn) < share * dist.world_size():  # the global batch, then this rank's slice of it
            if not order:
                order.extend(rng.sample(range(len(records)), len(records)))
            drawn.append(records[order.pop()])
        return encode_pairs(state.tokenizer, drawn[dist.rank() * share : (dist.rank() + 1) * share], device), {}

    return source
