"""What every task provides: training prompts with reference answers, and a fixed held-out set."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Example:
    """One prompt, the reference answer its reward is checked against, and any other dataset columns
    (e.g. Countdown's `nums` and `target`) that reward functions receive as keyword arguments."""

    prompt: str
    answer: str
    columns: Mapping[str, object] = field(default_factory=dict)


class Task(Protocol):
    """A source of examples. `sample` draws a training example; `test_examples` is the eval set."""

    def sample(self, rng: random.Random, split: str) -> Example: ...

    def test_examples(self) -> list[Example]: ...
