"""The one place math meets the model: a forward pass to per-token log-probs and entropy.

Two savings over turning the whole batch into logits at once, both exact:

- The output layer runs in chunks (`grpo.models.chunked_head`), so the (N, T, V) fp32 logits never
  exist at once, in the forward or the backward. This needs the logits to be exactly
  `lm_head(base_model(...).last_hidden_state)`; `output_layer` checks that once per model and
  otherwise the plain full-logits path runs.
- `grouped_completion_logprobs` forwards each prompt once per group of G completions and lets the
  G completions attend to its keys and values (prefix KV reuse with gradient), instead of running
  the same prompt G times.
"""

from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F
from torch.distributed.fsdp import FSDPModule
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer

from grpo.models.chunked_head import chunked_logprobs
from grpo.rollout import position_ids_from_mask
from grpo.rollout.cache_name import cache_keyword, returned_cache

Head = tuple[torch.Tensor, torch.Tensor | None]
# Completions of a training batch run in this many length buckets (see grouped_completion_logprobs).
LENGTH_BUCKETS = 4
_PLAIN_HEAD: weakref.WeakKeyDictionary[torch.nn.Module, bool] = weakref.WeakKeyDictionary()


def decoder_body(model: torch.nn.Module) -> torch.nn.Module:
    """The transformer below the output layer, reached through a peft wrapper (whose adapters live
    inside the wrapped model, so enabling or disabling them still applies)."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return getattr(inner, "base_model", inner)


def output_layer(model: torch.nn.Module) -> Head | None:
    """The output layer's (V, H) weight and (V,) bias (or None) when logits are exactly
    `lm_head(base_model(...).last_hidden_state)`; None when they are not (logit scaling or soft
    capping, a non-linear head) or cannot be reached (a DistributedDataParallel wrapper, whose
    gradient hooks run only through its own forward; an FSDP2-sharded model, whose weights are
    gathered only by its own forward).

    The check runs the model once on two tokens (in eval mode, so dropout cannot make it fail) and
    is remembered per model object.
    """
    if isinstance(model, FSDPModule):
        return None
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if not isinstance(head, torch.nn.Linear) or decoder_body(model) is model:
        return None
    if model not in _PLAIN_HEAD:
        _PLAIN_HEAD[model] = _logits_come_from_head(model, head)
    return (head.weight, head.bias) if _PLAIN_HEAD[model] else None


@torch.no_grad()
def _logits_come_from_head(model: torch.nn.Module, head: torch.nn.Linear) -> bool:
    was_training = model.training
    model.eval()
    try:
        ids = torch.tensor([[0, 1]], device=head.weight.device)
        logits = model(input_ids=ids, use_cache=False).logits.float()  # (1, 2, V)
        hidden = decoder_body(model)(input_ids=ids, use_cache=False).last_hidden_state
        return torch.allclose(head(hidden).float(), logits, rtol=1e-4, atol=1e-4)
    finally:
        model.train(was_training)


def completion_logprobs(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    completion_length: int,
    temperature: float,
    entropy_grad: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs of the completion tokens and the entropy of each predictive distribution.

    The distribution is softmax(logits / temperature), the one the sampler drew from, so that with
    unchanged weights these log-probs equal the rollout's `sampler_logprobs`. Only the last T + 1
    positions are turned into logits, since prompt positions are never scored, and those in
    chunks where the model allows (see the module docstring).

    Args:
        model: a causal LM.
        input_ids: (N, P + T) prompt (left-padded) followed by completion (right-padded).
        attention_mask: (N, P + T) bool or 0/1.
        completion_length: T.
        temperature: the sampling temperature (> 0).
        entropy_grad: keep the graph of the entropy (for an entropy bonus); otherwise it is detached
            and costs no extra memory.

    Returns:
        logprobs (N, T) float32 with gradient, entropy (N, T) float32 (detached unless entropy_grad).
    """
    T = completion_length
    targets = input_ids[:, -T:]  # (N, T)
    head = output_layer(model)
    inputs = dict(
        input_ids=input_ids,
        attention_mask=attention_mask.long(),
        position_ids=position_ids_from_mask(attention_mask),
        use_cache=False,
    )
    if head is None or entropy_grad:  # the chunked path's entropy carries no gradient
        logits = model(**inputs, logits_to_keep=T + 1).logits[:, :-1]  # (N, T, V): t predicts t+1
        return full_logits_logprobs(logits, targets, temperature, entropy_grad)
    hidden = decoder_body(model)(**inputs).last_hidden_state[:, -(T + 1) : -1]  # (N, T, H)
    return chunked_logprobs(hidden, *head, targets, temperature)


def full_logits_logprobs(
    logits: torch.Tensor, targets: torch.Tensor, temperature: float, entropy_grad: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """The plain path: (N, T) log-probs and entropies from the whole (N, T, V) logits tensor."""
    log_probs = F.log_softmax(logits.float() / temperature, dim=-1)  # (N, T, V)
    logprobs = torch.gather(log_probs, 2, targets.unsqueeze(-1)).squeeze(-1)
    with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
        entropy = -(log_probs.exp() * log_probs).sum(-1)
    return logprobs, entropy


def grouped_completion_logprobs(
    model: torch.nn.Module,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    completion_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    group_size: int,
    temperature: float,
    buckets: int = LENGTH_BUCKETS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`completion_logprobs` of prompt + completion, forwarding each prompt once per group.

    Rows are prompt-major groups of G (as in a RolloutBatch). The B distinct prompts run through
    the decoder once with a KV cache. The N completions are then sorted by length and run in
    `buckets` buckets on top of their prompts' cached keys and values (gathered with index_select,
    which autograd differentiates, summing the G gradients into the prompt), each bucket cut to its
    longest completion, so padding after short completions is mostly not computed. Completion token
    0 is predicted from the prompt's last hidden state, token j from completion position j - 1.
    Falls back to the concatenated forward when the rows are not such groups, the output layer is
    not plain (see `output_layer`) or the model's cache is not made of plain full-attention layers
    (sliding windows, linear attention).

    Args:
        model: a causal LM.
        prompt_ids, prompt_mask: (N, P) left-padded prompts, G identical rows per group.
        completion_ids, completion_mask: (N, T) right-padded completions.
        group_size: G.
        temperature: the sampling temperature (> 0).
        buckets: how many length buckets the completions run in.

    Returns:
        logprobs (N, T) float32 with gradient, entropy (N, T) float32 detached; 0 where the
        completion mask is False beyond a bucket's longest completion.
    """
    G, T = group_size, completion_ids.shape[1]
    head = output_layer(model)
    prefix = None
    if head is not None and G > 1 and _grouped(prompt_ids, prompt_mask, G):
        unique_mask = prompt_mask[::G]  # (B, P)
        prefix = decoder_body(model)(
            input_ids=prompt_ids[::G],
            attention_mask=unique_mask.long(),
            position_ids=position_ids_from_mask(unique_mask),
            use_cache=True,
        )
    cache = returned_cache(prefix) if prefix is not None else None
    if not isinstance(cache, Cache) or any(type(layer) is not DynamicLayer for layer in cache.layers):
        input_ids = torch.cat([prompt_ids, completion_ids], dim=1)  # (N, P+T)
        return completion_logprobs(model, input_ids, torch.cat([prompt_mask, completion_mask], 1), T, temperature)
    prompt_kv = [(layer.keys, layer.values) for layer in cache.layers]  # (B, heads, P, d) each
    first = prefix.last_hidden_state[:, -1]  # (B, H): predicts completion token 0
    lengths = completion_mask.sum(dim=1)  # (N,)
    order = torch.argsort(lengths, stable=True)  # (N,) shortest first
    bucket_rows = [rows for rows in order.tensor_split(buckets) if rows.numel()]
    widths = torch.stack([lengths[rows].max() for rows in bucket_rows]).clamp(min=1).tolist()  # one host sync
    logprobs = completion_ids.new_zeros(completion_ids.shape, dtype=torch.float32)  # (N, T)
    entropy = torch.zeros_like(logprobs)
    for rows, width in zip(bucket_rows, widths):
        groups = rows // G  # (n,) the prompt of each row
        hidden = first.index_select(0, groups).unsqueeze(1)  # (n, 1, H)
        if width > 1:
            kv = [(keys.index_select(0, groups), values.index_select(0, groups)) for keys, values in prompt_kv]
            rest = _completion_hidden(model, kv, prompt_mask[rows], completion_ids[rows, : width - 1],
                                      completion_mask[rows, : width - 1])
            hidden = torch.cat([hidden, rest], dim=1)  # (n, width, H)
        bucket_logprobs, bucket_entropy = chunked_logprobs(hidden, *head, completion_ids[rows, :width], temperature)
        logprobs = logprobs.index_copy(0, rows, F.pad(bucket_logprobs, (0, T - width)))
        entropy = entropy.index_copy(0, rows, F.pad(bucket_entropy, (0, T - width)))
    return logprobs, entropy


def _completion_hidden(
    model: torch.nn.Module,
    prompt_kv: list[tuple[torch.Tensor, torch.Tensor]],
    prompt_mask: torch.Tensor,
    completion_ids: torch.Tensor,
    completion_mask: torch.Tensor,
) -> torch.Tensor:
    """(n, t, H) final hidden states of n completions of t tokens on top of their prompts' cached
    keys and values ((n, heads, P, d) per layer) and (n, P) prompt mask."""
    mask = torch.cat([prompt_mask, completion_mask], dim=1)  # (n, P + t)
    body = decoder_body(model)
    return body(
        input_ids=completion_ids,
        attention_mask=mask.long(),
        position_ids=position_ids_from_mask(mask)[:, prompt_mask.shape[1] :],
        use_cache=True,
        **{cache_keyword(body): DynamicCache(ddp_cache_data=prompt_kv)},
    ).last_hidden_state


def _grouped(prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, group_size: int) -> bool:
    """True when the rows come in prompt-major groups of `group_size` identical prompts."""
    n, width = prompt_ids.shape
    if n % group_size:
        return False
    ids = prompt_ids.view(-1, group_size, width)  # (B, G, P)
    masks = prompt_mask.view(-1, group_size, width)
    return bool((ids == ids[:, :1]).all() and (masks == masks[:, :1]).all())
