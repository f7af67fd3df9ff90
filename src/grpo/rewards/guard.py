"""Calling reward functions safely: one place that checks what they return."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from grpo.errors import UserError


class RewardError(UserError):
    """A reward function broke its contract (wrong length or type)."""


def score(
    fn: Callable[..., list[float | None]],
    name: str,
    completions: list[str],
    columns: dict[str, Sequence[object]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rewards (N,) float32 and valid (N,) bool; None and non-finite values are marked invalid.

    Invalid entries hold 0.0 in `rewards` and are excluded from the advantage baseline.
    """
    values = fn(completions, **columns)
    if not isinstance(values, (list, tuple)) or len(values) != len(completions):
        got = len(values) if isinstance(values, (list, tuple)) else type(values).__name__
        raise RewardError(f"reward function '{name}' returned {got} values for {len(completions)} completions")
    rewards, valid = [], []
    for value in values:
        if value is not None and not isinstance(value, (int, float)):
            raise RewardError(f"reward function '{name}' returned {type(value).__name__}, expected float or None")
        ok = value is not None and math.isfinite(value)
        rewards.append(float(value) if ok else 0.0)
        valid.append(ok)
    return torch.tensor(rewards, dtype=torch.float32), torch.tensor(valid, dtype=torch.bool)
