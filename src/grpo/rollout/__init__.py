"""Sampling completions from a causal LM: G per prompt, with the sampler's log-probs.

Receives a model object and imports nothing else from `grpo`, so it can be tested with any tiny
Hugging Face model.
"""

from grpo.rollout.engine import generate, position_ids_from_mask
from grpo.rollout.sampling import sample_next_token
from grpo.rollout.types import RolloutBatch, SamplingParams

__all__ = [
    "RolloutBatch",
    "SamplingParams",
    "generate",
    "position_ids_from_mask",
    "sample_next_token",
]
