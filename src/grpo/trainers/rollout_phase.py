"""The rollout phase every method shares: prompts -> samples -> texts -> rewards -> statistics.

Sampling runs on the `rollout.backend` sampler (the built-in engine or a colocated vLLM) under the
run's autocast with the full weights gathered (FSDP2); rewards go through the run's reward guard,
whose fallback counters are reported and reset every step. DAPO's dynamic sampling is an option of
this phase, kept in step across ranks. The time spent generating (weight sync and its check
included) and the tokens generated are reported every step, so the step time can be split.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from grpo import dist
from grpo.algo import informative_groups, masked_mean
from grpo.rewards.combine import score_weighted
from grpo.rollout import RolloutBatch
from grpo.rollout.sampler import build_sampler
from grpo.rollout.types import concat_rollouts
from grpo.tasks.api import Example, reward_columns
from grpo.trainers.logprob_passes import Stats, policy_logprobs
from grpo.trainers.parallel import gathered
from grpo.trainers.scored import Scored, keep_groups
from grpo.trainers.state import TrainState


@dataclass
class GenerationClock:
    """Seconds spent in `sample` and completion tokens it returned, over one step's draws."""

    seconds: float = 0.0
    tokens: int = 0

    def stats(self) -> Stats:
        """`generation_time` (s) and `generation_tokens_per_s` of this rank."""
        rate = self.tokens / self.seconds if self.seconds > 0 else 0.0
        return {"generation_time": torch.tensor(self.seconds), "generation_tokens_per_s": torch.tensor(rate)}


def sample(state: TrainState, examples: list[Example], clock: GenerationClock | None = None) -> RolloutBatch:
    """G completions per prompt from the current policy, on the `rollout.backend` sampler.

    The sampler learns the optimiser's update count, so an engine outside the trainer (vLLM) copies
    the new weights in, and checks the copy, before generating. `clock`, when given, gets the time
    and the completion tokens (counting them waits for the device, so the time is complete).
    """
    start = time.perf_counter()
    prompts = [state.tokenizer(example.prompt)["input_ids"] for example in examples]
    if state.sampler is None:
        state.sampler = build_sampler(state.config, state.policy, state.tokenizer.eos_token_id,
                                      state.tokenizer.pad_token_id)
    with state.autocast(), gathered(state.policy):
        batch = state.sampler.sample(state.policy, prompts, state.optim.scheduler.last_epoch, state.generator)
    if clock is not None:
        clock.tokens += int(batch.completion_mask.sum())
        clock.seconds += time.perf_counter() - start
    return batch


def score(state: TrainState, batch: RolloutBatch, examples: list[Example]) -> Scored:
    """Decode the completions and score them with the run's weighted rewards, through the guard."""
    texts = state.tokenizer.batch_decode(batch.completion_ids, skip_special_tokens=True)
    scored = score_weighted(state.rewards, texts, reward_columns(examples, batch.group_size), state.guard)
    device = batch.completion_ids.device
    return Scored(batch, texts, scored.total.to(device), scored.valid.to(device),
                  scored.components, scored.component_valid)


def draw_informative(state: TrainState, examples: list[Example],
                     clock: GenerationClock | None = None) -> tuple[Scored, Stats]:
    """DAPO dynamic sampling: keep only groups whose rewards differ, drawing more prompts until this
    rank holds its B groups or `algo.max_draws` batches were drawn; then train on what it has (the
    last draw, unfiltered, if nothing had signal).

    Every rank draws as many prompt batches as the busiest one (a finished rank samples and discards),
    so the prompt streams, which are shared, stay in step, and so do colocated vLLM engines, which
    generate together under torchrun. Paper: Yu et al. 2025, "DAPO", Sec. 3.2.
    """
    B, G, max_draws = len(examples), state.config.rollout.group_size, state.config.algo.max_draws
    parts: list[Scored] = []
    have = drawn = 0
    for draw in range(1, max_draws + 1):
        sampled = sample(state, examples, clock)
        if have < B:
            scored = score(state, sampled, examples)
            keep = informative_groups(scored.rewards, scored.valid, G)  # (B,)
            keep &= torch.cumsum(keep.long(), 0) <= B - have  # no more groups than still needed
            parts.append(keep_groups(scored, keep))
            have, drawn = have + int(keep.sum()), draw
        busy = dist.all_reduce_max(torch.tensor([float(have < B)]))
        if draw == max_draws or not bool(busy[0]):
            break
        more = state.more_prompts() if state.more_prompts is not None else examples
        examples = more if have < B else examples
    stats: Stats = {"sampling_draws": torch.tensor(float(drawn)), "informative_groups": torch.tensor(float(have))}
    if have == 0:
        return scored, stats
    parts = [part for part in parts if part.batch.num_completions]
    batch = concat_rollouts([part.batch for part in parts], state.tokenizer.pad_token_id)
    texts = [text for part in parts for text in part.texts]
    cat = lambda name: torch.cat([getattr(part, name) for part in parts])
    gather = lambda name: {key: torch.cat([getattr(p, name)[key] for p in parts]) for key in parts[0].components}
    return Scored(batch, texts, cat("rewards"), cat("valid"), gather("components"),
                  gather("component_valid")), stats


def rollout_stats(scored: Scored) -> Stats:
    """Reward and length statistics of a batch of rollouts (detached 0-d tensors)."""
    batch, G = scored.batch, scored.batch.group_size
    grouped = scored.rewards.view(-1, G)  # (B, G)
    return {
        "reward_mean": scored.rewards.mean(),
        "reward_std": scored.rewards.std() if scored.rewards.numel() > 1 else torch.zeros(()),
        "zero_std_groups": (grouped.amax(1) == grouped.amin(1)).float().mean(),
        "completion_length": batch.completion_lengths.float().mean(),
        "truncated_fraction": batch.truncated.float().mean(),
        "invalid_rewards": (~scored.valid).float().mean(),
        **{f"reward/{name}": masked_mean(values, scored.component_valid[name].to(values.device))
           for name, values in scored.components.items()},
    }


def sampler_agreement(state: TrainState, batch: RolloutBatch) -> Stats:
    """How far the trainer's log-probs of the sampled tokens are from the sampler's (0 when they agree).

    Both should be the same distribution; a gap means importance ratios are off before any update
    (a dtype, temperature or padding mismatch between generation and training).
    """
    trainer = policy_logprobs(state, state.policy, batch, state.config.rollout.temperature)
    gap = (trainer - batch.sampler_logprobs)[batch.completion_mask]  # (tokens,)
    if gap.numel() == 0:
        gap = torch.zeros(1)
    ratio = gap.exp()
    return {"logprob_gap_max": gap.abs().max(), "logprob_ratio_min": ratio.min(), "logprob_ratio_max": ratio.max()}


def rollout_phase(state: TrainState, examples: list[Example]) -> tuple[Scored, Stats]:
    """Sample (with dynamic sampling when `algo.dynamic_sampling`), score, and report the batch,
    the reward guard's counters and, on a run's first step, the trainer-vs-sampler agreement."""
    clock = GenerationClock()
    if state.config.algo.dynamic_sampling:
        scored, stats = draw_informative(state, examples, clock)
    else:
        scored, stats = score(state, sample(state, examples, clock), examples), {}
    stats.update(clock.stats())
    stats.update(rollout_stats(scored))
    stats.update(state.guard.pop_stats())
    stats.update(state.sampler.pop_stats())  # the weight-sync check (vLLM); nothing for the engine
    if state.check_logprobs:
        state.check_logprobs = False
        stats.update(sampler_agreement(state, scored.batch))
    return scored, stats
