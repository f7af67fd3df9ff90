"""What every task provides: prompts with reference answers."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Example:
    """One prompt and the reference answer its reward is checked against."""

    prompt: str
    answer: str
