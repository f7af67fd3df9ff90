"""Prompt streams: which training examples each step sees, per rank, reproducibly."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from grpo import dist
from grpo.tasks.api import Example, Task


@dataclass
class PromptStream:
    """Draws `batch_size` training examples per call from the task, seeded per rank.

    Each rank gets its own stream (seed mixed with the rank), so ranks see different prompts.
    """

    task: Task
    seed: int
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed * 1_000_003 + dist.rank())

    def next_batch(self, batch_size: int) -> list[Example]:
        return [self.task.sample(self.rng, "train") for _ in range(batch_size)]
