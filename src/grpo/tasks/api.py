"""What every task provides: training prompts with reference answers, and a fixed held-out set."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Example:
    """One prompt, the reference answer its reward is checked against, and any other dataset columns
    (e.g. Countdown's `nums` and `target`) that reward functions receive as keyword arguments."""

    prompt: str
    answer: str
    columns: Mapping[str, object] = field(default_factory=dict)


def reward_columns(examples: list[Example], repeat: int = 1) -> dict[str, list[object]]:
    """The keyword columns reward functions receive: `answer` and every extra column, each example's
    values repeated `repeat` times (G times for a prompt-major batch of G completions per prompt)."""
    names = dict.fromkeys(name for example in examples for name in example.columns)
    columns: dict[str, list[object]] = {"answer": [e.answer for e in examples for _ in range(repeat)]}
    for name in names:
        columns[name] = [e.columns.get(name) for e in examples for _ in range(repeat)]
    return columns


class Task(Protocol):
    """A source of examples. `sample` draws a training example; `test_examples` is the eval set."""

    def sample(self, rng: random.Random, split: str) -> Example: ...

    def test_examples(self) -> list[Example]: ...


@dataclass(frozen=True)
class HeldOutSlice:
    """A named part of a task's held-out data (e.g. "longer expressions than training"), reported on its
    own by every evaluation so that a gain in one place cannot hide a loss in another."""

    name: str  # short, used in metric keys: eval/<name>
    description: str  # what the slice holds, in words, for tables
    examples: tuple[Example, ...]
    parts: tuple[str, ...] = ()  # when set, the accuracy is the mean of these slices' accuracies


@runtime_checkable
class SlicedTask(Task, Protocol):
    """A task that also declares named held-out slices, each of at most `size` examples."""

    def test_slices(self, size: int) -> list[HeldOutSlice]: ...


def held_out_slices(task: Task, size: int) -> list[HeldOutSlice]:
    """The task's named held-out slices of up to `size` examples each ([] when it declares none or size is 0)."""
    if size == 0 or not isinstance(task, SlicedTask):
        return []
    return [piece for piece in task.test_slices(size) if piece.examples]


def distinct_examples(draw: Callable[[], Example], count: int, attempts: int,
                      patience: int = 2000) -> list[Example]:
    """Up to `count` examples with distinct prompts, from at most `attempts` draws (in draw order).

    Generated tasks build their fixed held-out sets this way; fewer than `count` means the task's
    settings cannot produce that many distinct prompts, which the caller reports. `patience` draws
    in a row that bring nothing new end the search early: the pool is exhausted, and a user asking
    for too large a set hears so in a second, not after every attempt.
    """
    seen: set[str] = set()
    examples: list[Example] = []
    stale = 0
    for _ in range(attempts):
        example = draw()
        stale += 1
        if example.prompt not in seen:
            seen.add(example.prompt)
            examples.append(example)
            stale = 0
            if len(examples) == count:
                break
        if stale >= patience:
            break
    return examples
