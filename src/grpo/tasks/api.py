"""What every task provides: training prompts with reference answers, and a fixed held-out set."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Example:
    """One prompt and the reference answer its reward is checked against."""

    prompt: str
    answer: str


class Task(Protocol):
    """A source of examples. `sample` draws a training example; `test_examples` is the eval set."""

    def sample(self, rng: random.Random, split: str) -> Example: ...

    def test_examples(self) -> list[Example]: ...
