"""Scored rollouts, and the one place a step turns rewards into group-relative advantages."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import PreTrainedTokenizerBase

from grpo.algo import ADVANTAGE_ESTIMATORS, AdvantageInputs
from grpo.config.schema import AlgoConfig
from grpo.rollout import RolloutBatch

SAMPLES_PER_STEP = 8


@dataclass(frozen=True)
class Scored:
    """Rollouts with their rewards; N = B*G rows, prompt-major."""

    batch: RolloutBatch
    texts: list[str]  # N decoded completions
    rewards: torch.Tensor  # (N,) float32, the weighted total
    valid: torch.Tensor  # (N,) bool: False where every reward function failed to score
    components: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> (N,) each function's scores
    component_valid: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> (N,) bool


def keep_groups(scored: Scored, keep: torch.Tensor) -> Scored:
    """The groups of `scored` where `keep` (B,) is True."""
    rows = keep.cpu().repeat_interleave(scored.batch.group_size)  # (N,) bool
    texts = [text for text, kept in zip(scored.texts, rows.tolist()) if kept]
    rows = rows.to(scored.rewards.device)
    return Scored(scored.batch.select_groups(keep), texts, scored.rewards[rows], scored.valid[rows],
                  {name: v[rows] for name, v in scored.components.items()},
                  {name: v[rows] for name, v in scored.component_valid.items()})


def advantages_of(algo: AlgoConfig, rewards: torch.Tensor, valid: torch.Tensor, group_size: int) -> torch.Tensor:
    """(N,) advantages of `rewards` (N,) with the configured estimator (`algo.advantage`, `algo.std`)."""
    inputs = AdvantageInputs(rewards.cpu(), valid.cpu(), group_size, std=algo.std, eps=algo.advantage_eps)
    return ADVANTAGE_ESTIMATORS.get(algo.advantage)(inputs).to(rewards.device)


def sample_records(scored: Scored, prompts: list[str], advantages: torch.Tensor) -> list[dict[str, object]]:
    """A few completions of the step with their rewards and advantages (N,), for samples.jsonl."""
    G = scored.batch.group_size
    return [
        {
            "prompt": prompts[i // G],
            "completion": scored.texts[i],
            "reward": float(scored.rewards[i]),
            "advantage": float(advantages[i]),
            **{name: float(values[i]) for name, values in scored.components.items() if len(scored.components) > 1},
        }
        for i in range(min(SAMPLES_PER_STEP, len(scored.texts)))
    ]


def prompt_texts(tokenizer: PreTrainedTokenizerBase, batch: RolloutBatch) -> list[str]:
    """The B prompts of a batch as text, chat markers kept, padding and a leading BOS dropped.

    Decoded from the batch itself because dynamic sampling may train on other prompts than it was given.
    """
    prompts = []
    for row in batch.prompt_ids[:: batch.group_size].tolist():
        ids = [token for token in row if token != tokenizer.pad_token_id]
        if ids and ids[0] == tokenizer.bos_token_id:
            ids = ids[1:]
        prompts.append(tokenizer.decode(ids))
    return prompts
