"""Token log-probs and entropies from hidden states, chunked so full logits never exist at once.

The output layer turns (M, H) hidden states into (M, V) logits; with M = 4 x 1,024 tokens and the
152k vocabulary of Qwen2.5 that is 2.5 GB of fp32 logits, and the plain path keeps several such
tensors alive (the logits, their log-softmax and, in backward, the gradient). `ChunkedLogprobs`
computes the logits of `chunk` tokens at a time, keeps only what the outputs need (the log-sum-exp
per token), and in backward recomputes each chunk's logits from the saved hidden states and the
output weight (gradient checkpointing of the output layer alone, as in Liger-Kernel's fused linear
cross-entropy and Apple's Cut Cross-Entropy).

    z = (h W^T + b) / tau,  logprob = z_y - logsumexp(z),  entropy = logsumexp(z) - sum softmax(z) z
    d logprob / d z = onehot(y) - softmax(z)   (then chain through z = s / tau and s = h W^T + b)
"""

from __future__ import annotations

import torch

# Elements of one chunk of logits (64 MiB in fp32); the chunk length in tokens is this over V.
CHUNK_ELEMENTS = 1 << 24


def chunk_tokens(vocab_size: int, elements: int = CHUNK_ELEMENTS) -> int:
    """How many tokens' logits fit in one chunk of `elements` values."""
    return max(1, elements // vocab_size)


def _chunk_logits(
    hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, temperature: float
) -> torch.Tensor:
    """(m, V) float32 tempered logits of (m, H) hidden states, matmul in the weight's dtype."""
    logits = hidden @ weight.t()  # (m, V)
    if bias is not None:
        logits = logits + bias
    return logits.float() / temperature


class ChunkedLogprobs(torch.autograd.Function):
    """(M,) log-probs of `targets` and (M,) entropies from (M, H) hidden states, chunk by chunk.

    Gradients flow to `hidden`, `weight` and `bias` from the log-probs only; the entropy is a
    statistic and is returned without gradient.
    """

    @staticmethod
    def forward(  # noqa: D102 (documented on the class)
        ctx: torch.autograd.function.FunctionCtx,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        targets: torch.Tensor,
        temperature: float,
        chunk: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        count = hidden.shape[0]
        logprobs = hidden.new_empty(count, dtype=torch.float32)  # (M,)
        entropy = hidden.new_empty(count, dtype=torch.float32)  # (M,)
        lse = hidden.new_empty(count, dtype=torch.float32)  # (M,) saved for backward
        for start in range(0, count, chunk):
            rows = slice(start, min(start + chunk, count))
            logits = _chunk_logits(hidden[rows], weight, bias, temperature)  # (m, V)
            chunk_lse = torch.logsumexp(logits, dim=-1)  # (m,)
            lse[rows] = chunk_lse
            logprobs[rows] = logits.gather(-1, targets[rows].unsqueeze(-1)).squeeze(-1) - chunk_lse
            probs = torch.softmax(logits, dim=-1)  # (m, V)
            entropy[rows] = chunk_lse - (probs * logits).sum(-1)
        ctx.save_for_backward(hidden, weight, bias, targets, lse)
        ctx.temperature, ctx.chunk = temperature, chunk
        ctx.mark_non_differentiable(entropy)
        return logprobs, entropy

    @staticmethod
    def backward(  # noqa: D102
        ctx: torch.autograd.function.FunctionCtx, grad_logprobs: torch.Tensor, grad_entropy: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, ...]:
        hidden, weight, bias, targets, lse = ctx.saved_tensors
        need_hidden, need_weight, need_bias = ctx.needs_input_grad[:3]
        grad_hidden = torch.zeros_like(hidden) if need_hidden else None
        grad_weight = torch.zeros_like(weight, dtype=torch.float32) if need_weight else None
        grad_bias = torch.zeros_like(bias, dtype=torch.float32) if need_bias else None
        count = hidden.shape[0]
        for start in range(0, count, ctx.chunk):
            rows = slice(start, min(start + ctx.chunk, count))
            logits = _chunk_logits(hidden[rows], weight, bias, ctx.temperature)  # (m, V)
            # d logprob / d s = (onehot(y) - softmax(z)) / tau, scaled by the incoming gradient.
            grad_logits = torch.exp(logits - lse[rows].unsqueeze(-1)).neg_()  # (m, V) = -softmax(z)
            grad_logits.scatter_add_(-1, targets[rows].unsqueeze(-1), grad_logits.new_ones(rows.stop - start, 1))
            grad_logits.mul_((grad_logprobs[rows].float() / ctx.temperature).unsqueeze(-1))
            if grad_hidden is not None:
                grad_hidden[rows] = (grad_logits.to(weight.dtype) @ weight).to(hidden.dtype)
            if grad_weight is not None:
                grad_weight.addmm_(grad_logits.t(), hidden[rows].float())
            if grad_bias is not None:
                grad_bias.add_(grad_logits.sum(0))
        grad_weight = grad_weight.to(weight.dtype) if grad_weight is not None else None
        grad_bias = grad_bias.to(bias.dtype) if grad_bias is not None else None
        return grad_hidden, grad_weight, grad_bias, None, None, None


def chunked_logprobs(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    temperature: float,
    chunk: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs of `targets` and entropies under softmax((hidden W^T + b) / temperature).

    Args:
        hidden: (..., H) final hidden states, one per predicted token.
        weight: (V, H) output-layer weight; bias: (V,) or None.
        targets: (...) long token ids, the shape of `hidden` without its last dimension.
        temperature: divides the logits (> 0).
        chunk: tokens per chunk; default `chunk_tokens(V)`.

    Returns:
        logprobs (...) float32 with gradient, entropy (...) float32 without gradient.
    """
    shape = targets.shape
    flat_hidden = hidden.reshape(-1, hidden.shape[-1])  # (M, H)
    chunk = chunk or chunk_tokens(weight.shape[0])
    logprobs, entropy = ChunkedLogprobs.apply(flat_hidden, weight, bias, targets.reshape(-1), temperature, chunk)
    return logprobs.view(shape), entropy.view(shape)
