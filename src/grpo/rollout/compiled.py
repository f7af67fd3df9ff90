"""Optional `torch.compile` of the rollout engine's per-token decode step (`rollout.compile`).

The compiled path keeps every shape static so one compiled graph serves every decoding step:
- the prompt cache is copied into a transformers `StaticCache` (one (N, heads, C, head_dim) buffer
  per layer, written in place at the cache's own position counter), with the capacity C rounded up
  to a multiple of `CAPACITY_BUCKET` so prompt batches of different widths share a graph;
- the attention mask always covers all C columns (the causal mask hides the unwritten ones);
- finished rows are NOT compacted away (compaction changes the batch size and would recompile):
  every row runs until all rows have produced EOS or max_new_tokens is reached, as the plain path.
The step is compiled with `dynamic=False`, so a new batch size or capacity bucket compiles a new
graph (torch's recompile limit then caps how many are kept). Sampling stays in eager PyTorch.
Models whose prompt cache is not a plain `DynamicCache` of full-attention layers (sliding windows,
linear attention, legacy tuples) are reported as unsupported and the caller runs eager.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

import torch
from transformers.cache_utils import Cache, DynamicLayer, StaticCache, StaticLayer

from grpo.rollout.cache_name import cache_keyword
from grpo.rollout.sampling import sample_next_token
from grpo.rollout.types import SamplingParams

CAPACITY_BUCKET = 32  # cache columns are allocated in multiples of this (fewer distinct compiled shapes)

_compiled_step: Callable[..., torch.Tensor] | None = None
# Models whose compiled step failed once: they are not compiled again (each attempt costs a compile).
FAILED: weakref.WeakSet[torch.nn.Module] = weakref.WeakSet()


def _step(
    model: torch.nn.Module,
    tokens: torch.Tensor,
    attention: torch.Tensor,
    positions: torch.Tensor,
    cache: StaticCache,
    cache_name: str,
) -> torch.Tensor:
    """One cached forward of one token per row: (N, 1) ids -> (N, V) next-token logits; `cache_name` is
    the model's keyword for its cache (`grpo.rollout.cache_name`, read outside the compiled region)."""
    out = model(input_ids=tokens, attention_mask=attention, position_ids=positions, use_cache=True,
                **{cache_name: cache})
    return out.logits[:, -1, :]


def compiled_step() -> Callable[..., torch.Tensor]:
    """The process-wide compiled `_step` (built lazily: importing this module compiles nothing)."""
    global _compiled_step
    if _compiled_step is None:
        _compiled_step = torch.compile(_step, dynamic=False)
    return _compiled_step


def static_cache(model: torch.nn.Module, cache: object, capacity: int, repeats: int) -> StaticCache | None:
    """Copy the B-row prefilled cache into an N = B*repeats row `StaticCache` (prompt-major).

    The capacity is rounded up to a multiple of CAPACITY_BUCKET. Returns None when the cache or
    model is of a kind this path does not handle (the caller then decodes eagerly).
    """
    if not isinstance(cache, Cache) or not cache.layers:
        return None
    if any(type(layer) is not DynamicLayer or not layer.is_initialized for layer in cache.layers):
        return None
    capacity = -(-capacity // CAPACITY_BUCKET) * CAPACITY_BUCKET
    try:
        static = StaticCache(config=model.config, max_cache_len=capacity)
    except (AttributeError, KeyError, TypeError, ValueError):
        return None
    if len(static.layers) != len(cache.layers) or any(type(layer) is not StaticLayer for layer in static.layers):
        return None
    for index, layer in enumerate(cache.layers):
        keys = layer.keys.repeat_interleave(repeats, dim=0)  # (N, heads, P, head_dim)
        static.update(keys, layer.values.repeat_interleave(repeats, dim=0), index)
    return static


def decode_static(
    model: torch.nn.Module,
    logits: torch.Tensor,
    cache: StaticCache,
    prompt_mask: torch.Tensor,
    params: SamplingParams,
    ids_pads: tuple[int, int],
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sample up to max_new_tokens tokens per row through the compiled step, all rows every step.

    Same arguments and returns as the engine's `_decode` (completion_ids (N, T), completion_mask
    (N, T), sampler_logprobs (N, T), finished (N,)); `cache` is the N-row StaticCache.
    """
    eos_token_id, pad_token_id = ids_pads
    n, width = prompt_mask.shape
    steps = params.max_new_tokens
    capacity = cache.layers[0].max_cache_len
    device = prompt_mask.device
    ids = torch.full((steps, n), pad_token_id, dtype=torch.long, device=device)  # (T_max, N)
    mask = torch.zeros((steps, n), dtype=torch.bool, device=device)  # (T_max, N)
    logprobs = torch.zeros((steps, n), dtype=torch.float32, device=device)  # (T_max, N)
    done = torch.zeros(n, dtype=torch.bool, device=device)  # (N,)
    # (N, C), the same shape every step: columns not yet written are excluded by the causal mask.
    attention = torch.cat([prompt_mask.long(), prompt_mask.new_ones((n, capacity - width), dtype=torch.long)], 1)
    positions = prompt_mask.long().sum(dim=-1, keepdim=True)  # (N, 1) position of completion token 0
    step, cache_name = compiled_step(), cache_keyword(model)
    for t in range(steps):
        tokens, token_logprobs = sample_next_token(logits, params, generator)  # (N,) each
        fed = tokens.masked_fill(done, pad_token_id)
        ids[t], logprobs[t], mask[t] = fed, token_logprobs.masked_fill(done, 0.0), ~done
        done = done | (tokens == eos_token_id)
        if t == steps - 1 or bool(done.all()):
            break
        logits = step(model, fed.unsqueeze(-1), attention, positions + t, cache, cache_name)  # (N, V)
    length = t + 1
    return ids[:length].t().contiguous(), mask[:length].t().contiguous(), logprobs[:length].t().contiguous(), done
