"""Choosing the next token from logits: greedy, temperature, top-k and top-p (nucleus) sampling.

All rows are handled at once on the logits' device; randomness comes only from the explicit
`torch.Generator` passed in, so a seeded run draws the same tokens again.
"""

from __future__ import annotations

import torch

from grpo.rollout.types import SamplingParams


def sample_next_token(
    logits: torch.Tensor,
    params: SamplingParams,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Choose one token per row and return it with its log-prob under the sampling distribution.

    Greedy (temperature 0): token = argmax(logits), logprob = log_softmax(logits)[token].
    Otherwise: the token is drawn from softmax(logits / temperature) restricted by top-k and then
    top-p (renormalised), and logprob = log_softmax(logits / temperature)[token], i.e. the log-prob
    under the tempered distribution BEFORE truncation. This is the convention the trainer uses for
    its own log-probs; truncation only narrows which tokens can be drawn.

    Args:
        logits: (n, V) next-token logits, any float dtype; computed in float32.
        params: temperature, top_k, top_p (max_new_tokens is not used here).
        generator: source of randomness, on the same device as `logits`; None uses torch's global
            generator. Ignored when greedy.

    Returns:
        tokens: (n,) long, the chosen token ids.
        logprobs: (n,) float32, the log-prob of each chosen token as described above.
    """
    logits = logits.float()  # (n, V)
    if params.greedy:
        tokens = logits.argmax(dim=-1)  # (n,)
        logprobs = torch.log_softmax(logits, dim=-1)  # (n, V)
    else:
        tempered = logits / params.temperature  # (n, V)
        tokens = _draw(tempered, params.top_k, params.top_p, generator)  # (n,)
        logprobs = torch.log_softmax(tempered, dim=-1)  # (n, V)
    return tokens, logprobs.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def _draw(
    tempered: torch.Tensor, top_k: int, top_p: float, generator: torch.Generator | None
) -> torch.Tensor:
    """Sample one token per row from softmax(tempered) after the top-k and top-p filters.

    Args:
        tempered: (n, V) float32 logits already divided by the temperature.
        top_k: keep the k largest logits per row; 0 keeps all.
        top_p: keep the smallest prefix of the sorted distribution whose mass reaches top_p.
        generator: passed to torch.multinomial.

    Returns:
        (n,) long token ids in the original vocabulary order.
    """
    if top_k == 0 and top_p >= 1.0:
        probs = torch.softmax(tempered, dim=-1)  # (n, V)
        return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
    sorted_logits, sorted_ids = tempered.sort(dim=-1, descending=True)  # (n, V) each
    keep = _truncation_mask(sorted_logits, top_k, top_p)  # (n, V) bool, in sorted order
    probs = torch.softmax(sorted_logits.masked_fill(~keep, float("-inf")), dim=-1)  # (n, V)
    rank = torch.multinomial(probs, 1, generator=generator)  # (n, 1) position in sorted order
    return sorted_ids.gather(-1, rank).squeeze(-1)


def _truncation_mask(sorted_logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Which tokens survive top-k then top-p, for logits sorted in descending order.

    Top-p keeps token i iff the mass of the tokens ranked strictly above it is < top_p: that is the
    smallest prefix whose cumulative probability reaches top_p, and rank 0 (mass 0) is always kept.
    The top-p mass is measured on the distribution renormalised after top-k, as in Hugging Face
    `generate` and vLLM.

    Args:
        sorted_logits: (n, V) tempered logits sorted descending along the last dimension.
        top_k: 0 for no top-k filter.
        top_p: 1.0 for no top-p filter.

    Returns:
        (n, V) bool, True where the token may be sampled.
    """
    vocab = sorted_logits.shape[-1]
    rank = torch.arange(vocab, device=sorted_logits.device)  # (V,)
    keep = (rank < top_k if top_k > 0 else rank >= 0).expand_as(sorted_logits)  # (n, V)
    if top_p < 1.0:
        probs = torch.softmax(sorted_logits.masked_fill(~keep, float("-inf")), dim=-1)  # (n, V)
        mass_above = probs.cumsum(dim=-1) - probs  # (n, V) exclusive cumulative sum
        keep = keep & (mass_above < top_p)
    return keep
