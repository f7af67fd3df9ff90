"""The one place math meets the model: a forward pass to per-token log-probs and entropy."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from grpo.rollout import position_ids_from_mask


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
    positions are turned into logits (`logits_to_keep`), since prompt positions are never scored.

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
    outputs = model(
        input_ids=input_ids,
        attention_mask=attention_mask.long(),
        position_ids=position_ids_from_mask(attention_mask),
        logits_to_keep=T + 1,
        use_cache=False,
    )
    logits = outputs.logits[:, :-1].float() / temperature  # (N, T, V): position t predicts token t+1
    log_probs = F.log_softmax(logits, dim=-1)
    targets = input_ids[:, -T:]  # (N, T)
    logprobs = torch.gather(log_probs, 2, targets.unsqueeze(-1)).squeeze(-1)
    with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
        entropy = -(log_probs.exp() * log_probs).sum(-1)
    return logprobs, entropy
