"""Batched KV-cache generation of G completions per prompt, with the sampler's log-probs.

`generate` works with any Hugging Face causal LM. Each distinct prompt is prefilled once (B rows);
the cache and the last logits are then repeated G times along the batch (prompt-major), and every
decoding step feeds one new token per row through the cache, so no prefix is ever recomputed.
Prompts are left-padded so that all of them end in the same column; position ids are computed from
the attention mask so padding does not shift positions.
"""

from __future__ import annotations

import inspect
import warnings
from dataclasses import fields, replace

import torch
from transformers.cache_utils import Cache

from grpo.rollout.cache_name import cache_keyword, returned_cache
from grpo.rollout.compiled import FAILED, decode_static, static_cache
from grpo.rollout.kv_cache import preallocate
from grpo.rollout.sampling import sample_next_token
from grpo.rollout.types import RolloutBatch, SamplingParams

# The legacy cache format of older transformers: per layer, (key, value) of shape (n, heads, S, d).
LegacyCache = tuple[tuple[torch.Tensor, ...], ...]


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position of each token counted over real tokens only, for left-padded sequences.

    position = (number of real tokens up to and including this one) - 1, clamped at 0 on padding.
    Without this, a model would count left padding as positions and a prompt would see different
    positions depending on how long the other prompts in its batch are.

    Args:
        attention_mask: (n, S) bool or 0/1 integer, True/1 on real tokens.

    Returns:
        (n, S) long position ids.
    """
    return (attention_mask.long().cumsum(dim=-1) - 1).clamp(min=0)


def generate(
    model: torch.nn.Module,
    prompts: list[list[int]],
    *,
    group_size: int,
    params: SamplingParams,
    eos_token_id: int,
    pad_token_id: int,
    generator: torch.Generator | None = None,
    fast: bool = True,
    compile: bool = False,
) -> RolloutBatch:
    """Sample `group_size` completions for each prompt with a KV cache.

    The model runs in eval mode (no dropout, so the sampler log-probs match a later forward pass)
    under torch.inference_mode(); its training flag is restored afterwards, and the returned
    tensors are ordinary (not inference) tensors that autograd may use. A row stops at its first
    EOS (kept, mask True) and is padded after it; the loop ends when every row has stopped or after
    `params.max_new_tokens` tokens, so T is the longest completion actually produced.

    Args:
        model: a causal LM called as model(input_ids=, attention_mask=, position_ids=,
            past_key_values=, use_cache=True) returning `.logits` and `.past_key_values`.
        prompts: B token-id lists, each non-empty, of any lengths.
        group_size: G, completions per prompt.
        params: temperature, top-k, top-p and max_new_tokens.
        eos_token_id: the token that ends a completion.
        pad_token_id: the id written into padding (prompt left padding, completion right padding).
        generator: seeded source of randomness on the model's device; None uses torch's global one.
        fast: use the preallocated KV cache (`grpo.rollout.kv_cache`) and drop finished rows from
            the batch as they accumulate. False runs the plain path: the model's own cache, every
            row computed to the end. Greedy results are the same; sampled ones are equally
            distributed but draw different random numbers once rows are dropped.
        compile: decode through a `torch.compile`d per-token step over a static KV cache
            (`grpo.rollout.compiled`: no compaction of finished rows, so shapes stay static). The
            first call compiles (tens of seconds on CPU). A model it cannot handle, or a compile
            error, falls back to the eager path with one warning (and is not compiled again).

    Returns:
        A RolloutBatch of N = B*G prompt-major rows on the model's device.
    """
    _check_inputs(prompts, group_size)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            batch = _sample_with_fallback(
                model, prompts, group_size, params, (eos_token_id, pad_token_id), generator, (fast, compile)
            )
    finally:
        model.train(was_training)
    # Tensors made under inference_mode cannot be saved for backward (the trainer's gather on
    # completion_ids would fail), so the batch handed out holds ordinary copies.
    copies = {f.name: getattr(batch, f.name).clone() for f in fields(batch) if f.name != "group_size"}
    return replace(batch, **copies)


def _sample_with_fallback(
    model: torch.nn.Module,
    prompts: list[list[int]],
    group_size: int,
    params: SamplingParams,
    ids_pads: tuple[int, int],
    generator: torch.Generator | None,
    fast_compile: tuple[bool, bool],
) -> RolloutBatch:
    """`_sample_batch` compiled when asked and possible, else eager (one warning per model)."""
    fast, compile = fast_compile
    if compile and model not in FAILED:
        state = generator.get_state() if generator is not None else None
        try:
            batch = _sample_batch(model, prompts, group_size, params, ids_pads, generator, fast, compile=True)
            if batch is not None:
                return batch
            reason = "its KV cache is not a plain full-attention DynamicCache"
        except Exception as error:  # noqa: BLE001 - any failure to compile or run compiled means: run eager
            reason = f"{type(error).__name__}: {(str(error).splitlines() or [''])[0][:200]}"
        FAILED.add(model)
        warnings.warn(f"rollout.compile: decoding {type(model).__name__} eagerly instead ({reason})",
                      RuntimeWarning, stacklevel=4)
        if state is not None:
            generator.set_state(state)  # the eager run draws the same random numbers a fresh one would
    return _sample_batch(model, prompts, group_size, params, ids_pads, generator, fast)


def _sample_batch(
    model: torch.nn.Module,
    prompts: list[list[int]],
    group_size: int,
    params: SamplingParams,
    ids_pads: tuple[int, int],
    generator: torch.Generator | None,
    fast: bool,
    compile: bool = False,
) -> RolloutBatch | None:
    """Prefill the B prompts once, repeat cache and logits G times (prompt-major), then decode.

    With `compile`, returns None (before drawing any random number) when the cache is of a kind the
    compiled path does not handle.
    """
    eos_token_id, pad_token_id = ids_pads
    device = next(model.parameters()).device
    prompt_ids, prompt_mask = left_pad(prompts, pad_token_id, device)  # (B, P) each
    logits, cache = _prefill(model, prompt_ids, prompt_mask)  # (B, V), B-row cache
    capacity = prompt_ids.shape[1] + params.max_new_tokens
    # The fast path copies the prompt cache once into preallocated N-row buffers (repeated G times);
    # the plain path keeps the model's own cache and expands it with batch_repeat_interleave.
    static = static_cache(model, cache, capacity, group_size) if compile else None
    if compile and static is None:
        return None
    expanded = static is not None or (fast and preallocate(cache, capacity, group_size))
    if group_size > 1:
        logits = logits.repeat_interleave(group_size, dim=0)  # (N, V)
        cache = cache if expanded else _repeat_cache(cache, group_size)
        prompt_ids = prompt_ids.repeat_interleave(group_size, dim=0)  # (N, P)
        prompt_mask = prompt_mask.repeat_interleave(group_size, dim=0)  # (N, P)
    if static is not None:
        ids, mask, logprobs, finished = decode_static(
            model, logits, static, prompt_mask, params, (eos_token_id, pad_token_id), generator
        )
    else:
        ids, mask, logprobs, finished = _decode(
            model, logits, cache, prompt_mask, params, (eos_token_id, pad_token_id), generator, fast
        )
    return RolloutBatch(
        prompt_ids=prompt_ids,
        prompt_mask=prompt_mask,
        completion_ids=ids,
        completion_mask=mask,
        sampler_logprobs=logprobs,
        truncated=~finished,
        group_size=group_size,
    )


def _check_inputs(prompts: list[list[int]], group_size: int) -> None:
    """Reject inputs generation cannot start from, with a one-line reason."""
    if not prompts:
        raise ValueError("generate needs at least one prompt, got an empty list")
    empty = [i for i, prompt in enumerate(prompts) if len(prompt) == 0]
    if empty:
        raise ValueError(f"generate needs non-empty prompts; prompts at indices {empty} are empty")
    if group_size < 1:
        raise ValueError(f"group_size must be >= 1, got {group_size}")


def left_pad(
    prompts: list[list[int]], pad_token_id: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad token lists into one tensor so every prompt ends in the last column.

    Returns:
        prompt_ids: (B, P) long, P the longest prompt, padded on the left with pad_token_id.
        prompt_mask: (B, P) bool, True on real tokens.
    """
    width = max(len(prompt) for prompt in prompts)
    rows = [[pad_token_id] * (width - len(prompt)) + list(prompt) for prompt in prompts]
    prompt_ids = torch.tensor(rows, dtype=torch.long, device=device)  # (B, P)
    lengths = torch.tensor([len(prompt) for prompt in prompts], device=device)  # (B,)
    columns = torch.arange(width, device=device)  # (P,)
    prompt_mask = columns.unsqueeze(0) >= (width - lengths).unsqueeze(1)  # (B, P)
    return prompt_ids, prompt_mask


def _prefill(
    model: torch.nn.Module, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor
) -> tuple[torch.Tensor, Cache | LegacyCache]:
    """Run the prompts once, filling the cache and returning the logits for the first new token.

    The model builds the cache type it needs (passing no cache with use_cache=True), so
    models with sliding-window or hybrid layers get their own cache. Only the last column's logits
    are asked for where the model supports `logits_to_keep`, avoiding a (B, P, V) tensor.

    Returns:
        logits: (B, V) next-token logits at the last (real) prompt token.
        cache: the filled cache, B rows.
    """
    extra = {"logits_to_keep": 1} if _accepts(model, "logits_to_keep") else {}
    out = model(
        input_ids=prompt_ids,
        attention_mask=prompt_mask.long(),
        position_ids=position_ids_from_mask(prompt_mask),
        use_cache=True,
        **extra,
    )
    return out.logits[:, -1, :], returned_cache(out)


def _accepts(model: torch.nn.Module, argument: str) -> bool:
    """Whether the model's forward names `argument` explicitly in its signature."""
    return argument in inspect.signature(model.forward).parameters


def _repeat_cache(cache: Cache | LegacyCache, repeats: int) -> Cache | LegacyCache:
    """Repeat every cached row `repeats` times in place of one (repeat_interleave, prompt-major).

    transformers Cache objects (DynamicCache and its layer types) provide
    `batch_repeat_interleave`, which expands each layer's keys and values in place. The legacy tuple
    format of older versions is expanded tensor by tensor.
    """
    if isinstance(cache, Cache):
        cache.batch_repeat_interleave(repeats)
        return cache
    if isinstance(cache, tuple):
        return tuple(tuple(t.repeat_interleave(repeats, dim=0) for t in layer) for layer in cache)
    raise TypeError(f"cannot expand a KV cache of type {type(cache).__name__} for group sampling")


def _decode(
    model: torch.nn.Module,
    logits: torch.Tensor,
    cache: Cache | LegacyCache,
    prompt_mask: torch.Tensor,
    params: SamplingParams,
    ids_pads: tuple[int, int],
    generator: torch.Generator | None,
    compact: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sample up to max_new_tokens tokens per row, one cached forward step per token.

    Takes the (N, V) logits after the prompt, the N-row prompt cache, the (N, P) prompt mask and
    (eos_token_id, pad_token_id). With `compact`, rows that have finished are dropped from the
    batch (cache, mask, positions) once they make up a quarter of it, so they stop costing compute;
    `active` maps each remaining row to its row in the output. Without it every row keeps running
    to the end, feeding padding after its EOS (the plain reference path).
    Returns completion_ids (N, T) long, completion_mask (N, T) bool, sampler_logprobs (N, T) float32
    (as documented on RolloutBatch) and finished (N,) bool, True where an EOS was produced.
    """
    eos_token_id, pad_token_id = ids_pads
    n, width = prompt_mask.shape
    steps = params.max_new_tokens
    device = prompt_mask.device
    # Step-major (T_max, N) buffers, so each step writes one contiguous row; transposed at the end.
    ids = torch.full((steps, n), pad_token_id, dtype=torch.long, device=device)  # (T_max, N)
    mask = torch.zeros((steps, n), dtype=torch.bool, device=device)  # (T_max, N)
    logprobs = torch.zeros((steps, n), dtype=torch.float32, device=device)  # (T_max, N)
    active = torch.arange(n, device=device)  # (a,) output row of each row still in the batch
    done = torch.zeros(n, dtype=torch.bool, device=device)  # (a,) True once that row produced EOS
    # (a, P + T_max): every completion slot is attended, including padding after a row's EOS; the
    # outputs of finished rows are discarded, so what they attend to does not matter.
    attention = torch.cat([prompt_mask.long(), prompt_mask.new_ones((n, steps), dtype=torch.long)], 1)
    positions = prompt_mask.long().sum(dim=-1, keepdim=True)  # (a, 1) position of completion token 0
    cache_name = cache_keyword(model)
    for t in range(steps):
        tokens, token_logprobs = sample_next_token(logits, params, generator)  # (a,) each
        fed = tokens.masked_fill(done, pad_token_id)  # (a,)
        ids[t].index_copy_(0, active, fed)
        logprobs[t].index_copy_(0, active, token_logprobs.masked_fill(done, 0.0))
        mask[t].index_copy_(0, active, ~done)
        done = done | (tokens == eos_token_id)
        # One host sync per step (not per row): stop once every row has produced its EOS.
        finished_rows = int(done.sum())
        if t == steps - 1 or finished_rows == active.numel():
            break
        if compact and finished_rows > 0 and 4 * finished_rows >= active.numel():
            keep = (~done).nonzero().squeeze(-1)  # (a',) rows still generating
            cache = _select_rows(cache, keep)
            active, done, fed = active[keep], done[keep], fed[keep]
            attention, positions = attention[keep], positions[keep]
        out = model(
            input_ids=fed.unsqueeze(-1),
            attention_mask=attention[:, : width + t + 1],
            position_ids=positions + t,
            use_cache=True,
            **{cache_name: cache},
        )
        logits, cache = out.logits[:, -1, :], returned_cache(out)  # (a, V)
    finished = torch.ones(n, dtype=torch.bool, device=device)  # rows compacted away had finished
    finished[active] = done
    length = t + 1
    return ids[:length].t().contiguous(), mask[:length].t().contiguous(), logprobs[:length].t().contiguous(), finished


def _select_rows(cache: Cache | LegacyCache, keep: torch.Tensor) -> Cache | LegacyCache:
    """Keep only rows `keep` of the cache (transformers Cache or the legacy tuple format)."""
    if isinstance(cache, Cache):
        cache.batch_select_indices(keep)
        return cache
    return tuple(tuple(t.index_select(0, keep) for t in layer) for layer in cache)
