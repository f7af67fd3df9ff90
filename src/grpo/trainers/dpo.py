"""One DPO step: pairwise preference optimisation against the frozen reference policy.

    1. pairs (prompt, chosen, rejected): read from a preference JSONL (`dpo.source: offline`), or
       built online from the policy's own samples, the best vs the worst completion of each group
       ranked by the verifiable reward (groups whose rewards are all equal give no pair)  -> PairSource
    2. log-ratios h_w = log pi(y_w|x) - log pi_ref(y_w|x), h_l likewise (sums over tokens)
    3. loss from PREFERENCE_LOSSES[dpo.loss](h_w, h_l, dpo.beta), mean over pairs; one update

Paper: Rafailov et al. 2023, "Direct Preference Optimization"; online pairs from the policy's own
samples follow Guo et al. 2024, "Direct Language Model Alignment from Online AI Feedback" (OAIF),
with the verifiable reward as the judge. The `algo` keys of the clipped objective are not used.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerBase

from grpo.algo import PREFERENCE_LOSSES, masked_sum
from grpo.config import RunConfig
from grpo.models.logprobs import completion_logprobs
from grpo.rewards.guard import RewardGuard
from grpo.rollout import RolloutBatch
from grpo.tasks.api import Example
from grpo.tasks.pairs import preference_pairs
from grpo.trainers.data import PromptStream
from grpo.trainers.grpo import (
    GRPOContext,
    Stats,
    _micro_batches,
    policy_logprobs,
    rollout_stats,
    sample_rollouts,
    score_rollouts,
)
from grpo.trainers.method import MethodRun, Rewards, count_models, grpo_context
from grpo.trainers.optim import apply_update
from grpo.trainers.setup import Models

# Pairs are scored with the policy's own distribution (temperature 1), whatever the sampler used.
DPO_TEMPERATURE = 1.0


@dataclass(frozen=True)
class Pairs:
    """K preference pairs as one (2K)-row batch: rows 0..K-1 chosen, rows K..2K-1 rejected (same prompts)."""

    batch: RolloutBatch
    records: list[dict[str, object]]  # a few (prompt, chosen, rejected) for samples.jsonl

    @property
    def num_pairs(self) -> int:
        return self.batch.num_completions // 2


PairSource = Callable[[list[Example]], tuple["Pairs | None", Stats]]


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


def online_pairs(ctx: GRPOContext) -> PairSource:
    """Pairs from the policy's own samples: best vs worst of each group, ranked by the reward."""

    def source(examples: list[Example]) -> tuple[Pairs | None, Stats]:
        batch = sample_rollouts(ctx, examples)
        scored = score_rollouts(ctx, batch, examples)
        chosen, rejected = best_and_worst(scored.rewards, scored.valid, batch.group_size)
        stats = rollout_stats(scored)
        if chosen.numel() == 0:
            return None, stats
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


def offline_pairs(ctx: GRPOContext, path: Path, seed: int) -> PairSource:
    """Pairs from a preference JSONL, `rollout.prompts_per_step` per step, reshuffled every epoch."""
    records, rng = read_pairs(path), random.Random(seed)
    order: list[int] = []
    device = next(ctx.policy.parameters()).device

    def source(examples: list[Example]) -> tuple[Pairs | None, Stats]:
        chosen = []
        while len(chosen) < len(examples):
            if not order:
                order.extend(rng.sample(range(len(records)), len(records)))
            chosen.append(records[order.pop()])
        return encode_pairs(ctx.tokenizer, chosen, device), {}

    return source


def dpo_update(ctx: GRPOContext, pairs: Pairs) -> Stats:
    """Preference loss over all pairs (micro-batched, gradients accumulated), then one optimiser update."""
    dpo, batch, K = ctx.config.dpo, pairs.batch, pairs.num_pairs
    ref = policy_logprobs(ctx.reference, batch, DPO_TEMPERATURE, ctx.config.optim.micro_batch_size)
    input_ids, attention_mask = batch.sequences()
    T = batch.completion_ids.shape[1]
    size = max(1, ctx.config.optim.micro_batch_size // 2)
    slices = list(_micro_batches(K, size))
    totals: Stats = {}
    for index, pair_rows in enumerate(slices):
        chosen_rows = torch.arange(pair_rows.start, pair_rows.stop)  # (k,)
        rows = torch.cat([chosen_rows, chosen_rows + K])  # the chosen rows, then their rejected rows
        syncing = index == len(slices) - 1 or not hasattr(ctx.train_model, "no_sync")
        with contextlib.nullcontext() if syncing else ctx.train_model.no_sync():
            logprobs, _ = completion_logprobs(ctx.train_model, input_ids[rows], attention_mask[rows], T,
                                              DPO_TEMPERATURE)
            mask = batch.completion_mask[rows]
            logratios = masked_sum(logprobs - ref[rows], mask, dim=1)  # (2k,)
            k = pair_rows.stop - pair_rows.start
            losses, stats = PREFERENCE_LOSSES.get(dpo.loss)(logratios[:k], logratios[k:], dpo.beta)
            loss = losses.sum() / K  # the mean over all K pairs, accumulated across micro-batches
            loss.backward()
        totals["loss"] = totals.get("loss", 0.0) + loss.detach()
        for key, value in vars(stats).items():
            totals[key] = totals.get(key, 0.0) + value * (k / K)
    totals.update(apply_update(ctx.optim, ctx.policy.parameters(), ctx.config.optim.max_grad_norm))
    return totals


def build_dpo(
    config: RunConfig, models: Models, rewards: Rewards, stream: PromptStream, guard: RewardGuard | None = None
) -> MethodRun:
    """DPO against the frozen reference, with pairs from `dpo.source`."""
    ctx = grpo_context(config, models, rewards, stream, guard)
    sources = {
        "online": lambda: online_pairs(ctx),
        "offline": lambda: offline_pairs(ctx, Path(config.dpo.data or ""), config.seed),
    }
    source = sources[config.dpo.source]()

    def step(examples: list) -> tuple[dict, list]:
        pairs, stats = source(examples)
        stats = {**stats, "pairs": torch.tensor(float(pairs.num_pairs if pairs else 0))}
        if pairs is None:  # no group had a reward gap: nothing to prefer, no update this step
            return stats, []
        return {**stats, **dpo_update(ctx, pairs)}, pairs.records

    return MethodRun(step, count_models(models.policy, models.reference), ctx)
