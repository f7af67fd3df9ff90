"""Tasks read from your own data: JSONL, JSON, Parquet, CSV or a saved `datasets` directory.

A column mapping says which dataset column plays which role: `prompt` (the question), `answer`
(the reference), and any other role name, whose values reward functions receive as keyword
columns. Without a separate test file, `test_size` rows chosen by a fixed seed are held out of the
training file, so train and test never share a row. Files are read and every row checked by
`grpo.tasks.readers` and `grpo.tasks.validate` before any example is built.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from grpo.errors import UserError
from grpo.tasks.api import Example

HOLDOUT_SEED = 1234


def split_holdout(examples: list[Example], test_size: int, source: str) -> tuple[list[Example], list[Example]]:
    """(train, test): `test_size` examples chosen with a fixed seed are held out of training."""
    if test_size >= len(examples):
        raise UserError(f"task.test_size ({test_size}) leaves no training rows in {source} "
                        f"({len(examples)} rows); lower it or set task.test_path")
    order = list(range(len(examples)))
    random.Random(HOLDOUT_SEED).shuffle(order)
    held = set(order[:test_size])
    return [e for i, e in enumerate(examples) if i not in held], [examples[i] for i in order[:test_size]]


@dataclass(frozen=True)
class ListTask:
    """A task over fixed lists of examples; training draws uniformly with the caller's RNG."""

    train: tuple[Example, ...]
    test: tuple[Example, ...]

    def sample(self, rng: random.Random, split: str) -> Example:
        pool = self.test if split == "test" else self.train
        return pool[rng.randrange(len(pool))]

    def test_examples(self) -> list[Example]:
        return list(self.test)
