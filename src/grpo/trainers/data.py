"""Prompt streams: which training examples each step sees, reproducibly, split across ranks."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from grpo import dist
from grpo.errors import UserError
from grpo.tasks.api import Example, Task


@dataclass
class PromptStream:
    """Draws the global batch of `batch_size` training examples per call; each rank keeps its share.

    Every rank holds the same stream (same seed, same draws), so the ranks' shares never overlap and
    the stream's state is the same everywhere (a checkpoint saves it once).
    """

    task: Task
    seed: int
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed * 1_000_003)

    def next_batch(self, batch_size: int) -> list[Example]:
        """This rank's `batch_size / world_size` consecutive examples of the next global batch."""
        share = rank_share(batch_size)
        examples = [self.task.sample(self.rng, "train") for _ in range(batch_size)]
        return examples[dist.rank() * share : (dist.rank() + 1) * share]


def rank_share(batch_size: int) -> int:
    """Prompts per rank; `rollout.prompts_per_step` must split evenly over the ranks."""
    world = dist.world_size()
    if batch_size % world:
        raise UserError(f"rollout.prompts_per_step ({batch_size}) must be a multiple of the number of processes "
                        f"({world}): each rank trains on whole groups of an equal share of the batch")
    return batch_size // world
