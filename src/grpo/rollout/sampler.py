"""Who generates a step's rollouts: the built-in engine or a colocated vLLM, chosen by `rollout.backend`.

The trainer's sampling phase calls `Sampler.sample` with the policy and the number of optimiser
updates so far; that count is all a sampler needs to know about training:

- `EngineSampler` runs `grpo.rollout.generate` on the policy itself (weights are always current).
- `VLLMSampler` keeps a vLLM engine beside the trainer. When the update count has moved on by
  `rollout.vllm.sync_every` since its last copy (and on the first call, which also covers resumed
  runs and LoRA), it writes the policy's weights into the engine (`sync_weights`) and checks the copy:
  both sides score a few sequences and the sampler-vs-trainer k3 KL over their tokens must stay below
  the bound for the weights' dtype, or the run stops naming the likely causes. Its statistics are
  handed to the trainer's metrics by `pop_stats`.
"""

from __future__ import annotations

import hashlib
from typing import Any, Protocol

import torch
from transformers import AutoConfig

from grpo import dist
from grpo.algo import ROLLOUT_CORRECTIONS, CorrectionOutput, mismatch_stats
from grpo.config.schema import AlgoConfig, RunConfig
from grpo.errors import UserError
from grpo.rollout.engine import generate
from grpo.rollout.types import RolloutBatch, SamplingParams
from grpo.rollout.vllm_backend import (
    VLLM_PACKAGES,
    EngineOptions,
    generate_vllm,
    sequence_logprobs,
    start_engine,
    stop_engine,
    sync_weights,
    vllm_available,
)

Stats = dict[str, torch.Tensor]


class SamplerMismatch(UserError):
    """After a weight sync, the sampler's log-probs are further from the trainer's than the dtype allows."""


class Sampler(Protocol):
    """Generates G completions per prompt with the current policy (the RolloutBatch contract)."""

    def sample(self, policy: torch.nn.Module, prompts: list[list[int]], updates: int,
               generator: torch.Generator | None) -> RolloutBatch:
        """Completions of `prompts` after `updates` optimiser updates."""
        ...

    def pop_stats(self) -> Stats:
        """Statistics gathered since the last call (e.g. of weight syncs); empty when none."""
        ...

    def close(self) -> None:
        """Release what the sampler holds (an engine, its memory and process groups) once training ends."""
        ...


class EngineSampler:
    """The built-in KV-cache engine, run on the policy itself."""

    def __init__(self, config: RunConfig, eos_pad: tuple[int, int]) -> None:
        self.config, self.eos_pad = config, eos_pad

    def sample(self, policy: torch.nn.Module, prompts: list[list[int]], updates: int,
               generator: torch.Generator | None) -> RolloutBatch:
        rollout = self.config.rollout
        return generate(policy, prompts, group_size=rollout.group_size, params=sampling_params(self.config),
                        eos_token_id=self.eos_pad[0], pad_token_id=self.eos_pad[1], generator=generator,
                        compile=rollout.compile)

    def pop_stats(self) -> Stats:
        return {}

    def close(self) -> None:
        """Nothing to release: the engine runs on the policy itself."""


def sampling_params(config: RunConfig) -> SamplingParams:
    """The run's temperature, top-k, top-p and completion budget."""
    rollout = config.rollout
    return SamplingParams(rollout.temperature, rollout.top_k, rollout.top_p, rollout.max_new_tokens)


def seeds_for(run_seed: int, updates: int, draw: int, count: int) -> list[int]:
    """Request seeds of `count` prompts: from the run's seed, the update count, the draw and the rank.

    Each request's G samples get seed + 0 .. G-1 inside vLLM, so seeds are spaced 2**10 apart; the
    40-bit hash of (run seed, updates, draw within the step, rank) is shifted past them.
    """
    key = f"{run_seed}:{updates}:{draw}:{dist.rank()}".encode()
    base = int.from_bytes(hashlib.blake2b(key, digest_size=5).digest(), "big") << 20
    return [base + (index << 10) for index in range(count)]


class VLLMSampler:
    """A colocated vLLM engine whose weights follow the policy, checked after every copy."""

    def __init__(self, config: RunConfig, policy: torch.nn.Module, eos_pad: tuple[int, int]) -> None:
        self.config, self.eos_pad = config, eos_pad
        self.settings = config.rollout.vllm
        self.dtype = _engine_dtype(config)
        self.llm = start_engine(engine_options(config, policy))
        self.synced_at: int | None = None
        self.stats: Stats = {}
        self.draw: tuple[int | None, int] = (None, 0)  # (updates, draw): dynamic sampling draws several times

    def sample(self, policy: torch.nn.Module, prompts: list[list[int]], updates: int,
               generator: torch.Generator | None) -> RolloutBatch:
        """Sync if due, generate with per-request seeds, then (sleep mode) release the engine's memory.

        `generator` is not used: vLLM draws from the request seeds of `seeds_for`.
        """
        if self.settings.sleep_mode:
            self.llm.wake_up()
        if self.synced_at is None or updates - self.synced_at >= self.settings.sync_every:
            self.sync(policy, prompts)
            self.synced_at = updates
        draw = self.draw[1] + 1 if self.draw[0] == updates else 0
        self.draw = (updates, draw)
        seeds = seeds_for(self.config.seed, updates, draw, len(prompts))
        batch = generate_vllm(self.llm, prompts, group_size=self.config.rollout.group_size,
                              params=sampling_params(self.config), eos_token_id=self.eos_pad[0],
                              pad_token_id=self.eos_pad[1], seeds=seeds, device=next(policy.parameters()).device)
        if self.settings.sleep_mode:
            self.llm.sleep(level=1)
        return batch

    def sync(self, policy: torch.nn.Module, probes: list[list[int]]) -> None:
        """Copy the policy into the engine, then check the copy on `check_sequences` of `probes`."""
        sync_weights(self.llm, policy, self.settings.sync_timeout)
        sequences = [p for p in probes if len(p) >= 2][: self.settings.check_sequences]
        if sequences:
            self.stats.update(check_sync(self.llm, policy, sequences, self.bound))

    @property
    def bound(self) -> tuple[str, float]:
        """(key, value) of the KL bound that applies to the engine's dtype."""
        if self.dtype == "float32":
            return "rollout.vllm.check_kl_float32", self.settings.check_kl_float32
        return "rollout.vllm.check_kl_bfloat16", self.settings.check_kl_bfloat16

    def pop_stats(self) -> Stats:
        stats, self.stats = self.stats, {}
        return stats

    def close(self) -> None:
        """Shut the engine down now, while the process group it joined still exists."""
        stop_engine(self.llm)


@torch.no_grad()
def trainer_sequence_logprobs(policy: torch.nn.Module, sequences: list[list[int]]) -> list[torch.Tensor]:
    """The trainer's log_softmax(logits) of tokens 1.. of each sequence (no temperature, no padding)."""
    device = next(policy.parameters()).device
    was_training = policy.training
    policy.eval()
    try:
        out = []
        for sequence in sequences:
            ids = torch.tensor([sequence], device=device)  # (1, S)
            logprobs = torch.log_softmax(policy(input_ids=ids).logits[0, :-1].float(), dim=-1)  # (S-1, V)
            out.append(logprobs.gather(-1, ids[0, 1:, None])[:, 0].cpu())
        return out
    finally:
        policy.train(was_training)


def check_sync(llm: Any, policy: torch.nn.Module, sequences: list[list[int]], bound: tuple[str, float]) -> Stats:
    """Sampler-vs-trainer k3 KL over the tokens of `sequences`; raises SamplerMismatch above the bound."""
    sampler = torch.cat(sequence_logprobs(llm, sequences))  # (tokens,)
    trainer = torch.cat(trainer_sequence_logprobs(policy, sequences))  # (tokens,)
    mask = torch.ones_like(trainer, dtype=torch.bool)
    kl = mismatch_stats(trainer[None], sampler[None], mask[None], mask[None])["sampler_kl_k3"]
    key, limit = bound
    if not float(kl) <= limit:
        raise SamplerMismatch(
            f"{key}: after the weight sync the sampler-vs-trainer KL (k3 over {trainer.numel()} tokens) is "
            f"{float(kl):.3g} > {limit:g}; likely causes: stale or partly copied weights in vLLM, a dtype "
            "mismatch (rollout.vllm.dtype vs model.dtype), a temperature applied on one side only, or a "
            "tokenizer/vocabulary that differs between the engine's model directory and the trainer")
    return {"sync_kl_k3": kl, "sync_logprob_gap_max": (trainer - sampler).abs().max()}


def _engine_dtype(config: RunConfig) -> str:
    dtype = config.rollout.vllm.dtype
    return config.model.dtype if dtype == "auto" else dtype


def engine_options(config: RunConfig, policy: torch.nn.Module) -> EngineOptions:
    """The engine's start-up options from the config and the policy's model directory."""
    base = policy.get_base_model() if hasattr(policy, "get_base_model") else policy
    path = str(getattr(base.config, "_name_or_path", "") or "")
    limit = getattr(AutoConfig.from_pretrained(path), "max_position_embeddings", None) if path else None
    settings = config.rollout.vllm
    length = settings.max_model_len or limit or 4096
    if limit is not None and length > limit:
        raise UserError(f"rollout.vllm.max_model_len ({length}) must not exceed the model's "
                        f"max_position_embeddings ({limit})")
    on_cpu = next(policy.parameters()).device.type == "cpu"
    kv_gb = settings.kv_cache_memory_gb or (1.0 if on_cpu else None)
    return EngineOptions(model_path=path, dtype=_engine_dtype(config), max_model_len=length,
                         gpu_memory_utilization=settings.gpu_memory_utilization, kv_cache_memory_gb=kv_gb,
                         sleep_mode=settings.sleep_mode, tensor_parallel_size=settings.tensor_parallel_size,
                         seed=config.seed, data_parallel_size=dist.world_size(),
                         compile=not on_cpu if settings.compile is None else settings.compile)


def build_sampler(config: RunConfig, policy: torch.nn.Module, eos_token_id: int, pad_token_id: int) -> Sampler:
    """The sampler `rollout.backend` names, ready to generate with `policy`.

    The config already refused `rollout.backend=vllm` where vllm is missing; this repeats the check
    for callers that build a RunConfig elsewhere.
    """
    if config.rollout.backend == "vllm" and not vllm_available():
        raise UserError(f"rollout.backend=vllm: the vllm package is not installed here; install {VLLM_PACKAGES}")
    if config.rollout.backend == "vllm":
        return VLLMSampler(config, policy, (eos_token_id, pad_token_id))
    return EngineSampler(config, (eos_token_id, pad_token_id))


def rollout_correction(
    algo: AlgoConfig, old_logprobs: torch.Tensor, sampler_logprobs: torch.Tensor, completion_mask: torch.Tensor
) -> tuple[CorrectionOutput, Stats]:
    """`algo.rollout_correction` applied to one micro-batch, with the mismatch metrics of its tokens.

    Args are (n, T): the trainer's pi_old log-probs (detached), the sampler's, and the completion mask.
    The metrics (sampler_kl_k3, is_ratio_min/max/p1/p99, is_masked_share) are of this micro-batch;
    the trainer averages them over micro-batches weighted by rows.
    """
    correction = ROLLOUT_CORRECTIONS.get(algo.rollout_correction)(
        old_logprobs.detach(), sampler_logprobs, completion_mask, algo.rollout_correction_level,
        algo.rollout_correction_cap,
    )
    return correction, mismatch_stats(old_logprobs.detach(), sampler_logprobs, completion_mask, correction.loss_mask)
