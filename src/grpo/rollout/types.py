"""Records passed between the rollout engine and the trainer.

`SamplingParams` says how the next token is chosen; `RolloutBatch` holds the N = B*G completions
sampled for B prompts, G per prompt, with every tensor's shape and dtype stated below.

Shape letters: B prompts, G group size, N = B*G completions, P prompt length (after left padding),
T completion length (the longest completion in the batch, at most `max_new_tokens`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SamplingParams:
    """How `sample_next_token` chooses each token.

    Attributes:
        temperature: divides the logits before sampling; 0 means greedy (argmax).
        top_k: keep only the k most likely tokens before sampling; 0 switches the filter off.
        top_p: nucleus filter; keep the smallest set of most likely tokens whose probability mass
            (after top-k) reaches `top_p`; the most likely token is always kept. 1.0 switches it off.
        max_new_tokens: the most tokens generated per completion, the EOS token included.

    Top-k and top-p only narrow the set the token is drawn from; the log-probs reported for a token
    are always those of the untruncated tempered distribution (see `RolloutBatch.sampler_logprobs`).
    """

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    max_new_tokens: int = 16

    def __post_init__(self) -> None:
        """Reject values that have no meaning, naming the field and the allowed range."""
        if self.temperature < 0.0:
            raise ValueError(f"temperature must be >= 0 (0 means greedy), got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 switches top-k off), got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1] (1 switches top-p off), got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")

    @property
    def greedy(self) -> bool:
        """True when tokens are chosen by argmax (temperature 0)."""
        return self.temperature == 0.0


@dataclass
class RolloutBatch:
    """N = B*G completions of B prompts, G per prompt, as padded tensors on the model's device.

    Rows are prompt-major: rows i*G .. i*G+G-1 are the G completions of prompt i.

    Attributes:
        prompt_ids: (N, P) long; the prompt of each row, LEFT-padded with the pad id so every
            prompt ends in the last column and the completion follows directly.
        prompt_mask: (N, P) bool; True on real prompt tokens, False on left padding.
        completion_ids: (N, T) long; generated tokens, right-padded with the pad id after the EOS.
        completion_mask: (N, T) bool; True on generated tokens up to and including the EOS token,
            False on the padding after it.
        sampler_logprobs: (N, T) float32; log-prob of each sampled token under the distribution it
            was sampled from BEFORE top-k/top-p truncation: log_softmax(logits / temperature), or
            log_softmax(logits) when greedy. The trainer computes its own log-probs with the same
            convention, so the two agree when the weights are unchanged. 0 where the mask is False.
        truncated: (N,) bool; True where no EOS was produced within `max_new_tokens`.
        group_size: G, the number of completions per prompt.
    """

    prompt_ids: torch.Tensor
    prompt_mask: torch.Tensor
    completion_ids: torch.Tensor
    completion_mask: torch.Tensor
    sampler_logprobs: torch.Tensor
    truncated: torch.Tensor
    group_size: int

    def __post_init__(self) -> None:
        """Check that the tensors agree on N, P and T, so a malformed batch fails where it is built."""
        n, p = self.prompt_ids.shape
        t = self.completion_ids.shape[1]
        expected = {
            "prompt_mask": (n, p),
            "completion_mask": (n, t),
            "sampler_logprobs": (n, t),
            "truncated": (n,),
        }
        for name, shape in expected.items():
            actual = tuple(getattr(self, name).shape)
            if actual != shape:
                raise ValueError(f"RolloutBatch.{name} has shape {actual}, expected {shape}")
        if self.group_size < 1 or n % self.group_size != 0:
            raise ValueError(f"RolloutBatch has {n} rows, not a multiple of group_size={self.group_size}")

    @property
    def num_completions(self) -> int:
        """N, the number of rows (completions)."""
        return self.completion_ids.shape[0]

    @property
    def num_prompts(self) -> int:
        """B, the number of distinct prompts (N / G)."""
        return self.num_completions // self.group_size

    @property
    def completion_lengths(self) -> torch.Tensor:
        """(N,) long; tokens that count in each completion, the EOS included."""
        return self.completion_mask.sum(dim=-1)

    def sequences(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompt and completion side by side, for the trainer's forward pass.

        Returns:
            input_ids: (N, P+T) long; prompt_ids followed by completion_ids.
            attention_mask: (N, P+T) bool; prompt_mask followed by completion_mask.

        The completion token at column j sits at column P+j, so its log-prob is read from the logits
        at column P+j-1. Because prompts are left-padded, position ids must be derived from the
        attention mask (see `grpo.rollout.position_ids_from_mask`), not from the column index.
        """
        input_ids = torch.cat([self.prompt_ids, self.completion_ids], dim=1)  # (N, P+T)
        attention_mask = torch.cat([self.prompt_mask, self.completion_mask], dim=1)  # (N, P+T)
        return input_ids, attention_mask

    def select_groups(self, keep: torch.Tensor) -> RolloutBatch:
        """The groups whose entry in `keep` (B,) bool is True, all G rows of each, order kept."""
        rows = keep.to(self.completion_ids.device).repeat_interleave(self.group_size)  # (N,)
        return RolloutBatch(
            self.prompt_ids[rows], self.prompt_mask[rows], self.completion_ids[rows], self.completion_mask[rows],
            self.sampler_logprobs[rows], self.truncated[rows], self.group_size,
        )


def _pad_columns(tensor: torch.Tensor, width: int, value: float, left: bool) -> torch.Tensor:
    """Pad a (N, W) tensor with `value` to (N, width), on the left or the right."""
    missing = width - tensor.shape[1]
    pad = torch.full((tensor.shape[0], missing), value, dtype=tensor.dtype, device=tensor.device)
    return torch.cat([pad, tensor] if left else [tensor, pad], dim=1)


def concat_rollouts(batches: list[RolloutBatch], pad_token_id: int) -> RolloutBatch:
    """Stack batches of the same group size row-wise: prompts re-left-padded, completions right-padded.

    Used by dynamic sampling, which gathers the informative groups of several draws into one batch.
    """
    if not batches or len({batch.group_size for batch in batches}) != 1:
        raise ValueError("concat_rollouts needs at least one batch, all with the same group_size")
    P = max(batch.prompt_ids.shape[1] for batch in batches)
    T = max(batch.completion_ids.shape[1] for batch in batches)

    def stack(name: str, width: int, value: float, left: bool) -> torch.Tensor:
        return torch.cat([_pad_columns(getattr(batch, name), width, value, left) for batch in batches])

    return RolloutBatch(
        prompt_ids=stack("prompt_ids", P, pad_token_id, left=True),
        prompt_mask=stack("prompt_mask", P, False, left=True),
        completion_ids=stack("completion_ids", T, pad_token_id, left=False),
        completion_mask=stack("completion_mask", T, False, left=False),
        sampler_logprobs=stack("sampler_logprobs", T, 0.0, left=False),
        truncated=torch.cat([batch.truncated for batch in batches]),
        group_size=batches[0].group_size,
    )
