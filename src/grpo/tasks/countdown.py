"""Countdown: reach a target number by combining the given numbers with + - * / (each used once).

This is the task of TinyZero (Pan et al. 2025), the smallest known setting where R1-Zero style
reasoning emerges. Problems come from a dataset with `nums` and `target` columns (for example
`Jiayi-Pan/Countdown-Tasks-3to4`), or are generated here: random numbers combined by a random
expression, so every generated problem has a solution. The reward is `grpo.rewards.countdown`.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

from grpo.errors import UserError
from grpo.rewards.countdown import evaluate_equation
from grpo.tasks.api import Example, distinct_examples

DEFAULT_COLUMNS = {"nums": "nums", "target": "target"}
QUESTION = (
    "Using the numbers {nums}, create an equation that equals {target}. You can use basic arithmetic "
    "operations (+, -, *, /) and each number can only be used once. Show your work in <think> </think> tags. "
    "And return the final answer in <answer> </answer> tags, for example <answer> (1 + 2) / 3 </answer>."
)
TEST_BUCKETS = 10


def question(nums: list[int], target: int) -> str:
    return QUESTION.format(nums=list(nums), target=target)


def make_example(nums: list[int], target: int, render: Callable[[str], str]) -> Example:
    return Example(render(question(nums, target)), str(target), {"nums": list(nums), "target": target})


def random_problem(rng: random.Random, count: int, max_number: int) -> tuple[list[int], int, str]:
    """Numbers, a positive integer target, and the solution the target was built from."""
    while True:
        nums = [rng.randint(1, max_number) for _ in range(count)]
        order = rng.sample(nums, count)
        expression = str(order[0])
        for number in order[1:]:
            expression = f"({expression} {rng.choice('+-*/')} {number})"
        try:
            value, _ = evaluate_equation(expression)
        except ValueError:
            continue
        if value > 0 and value.denominator == 1 and value != Fraction(order[-1]):
            return nums, int(value), expression


def is_test_problem(nums: list[int], target: int) -> bool:
    key = f"{sorted(nums)}->{target}".encode()
    return hashlib.sha256(key).digest()[0] % TEST_BUCKETS == 0


@dataclass(frozen=True)
class CountdownTask:
    """Generated Countdown problems; train and test are disjoint by a hash of numbers and target."""

    render: Callable[[str], str]
    min_numbers: int = 3
    max_numbers: int = 4
    max_number: int = 50
    test_size: int = 200

    def sample(self, rng: random.Random, split: str) -> Example:
        want_test = split == "test"
        while True:
            nums, target, _ = random_problem(rng, rng.randint(self.min_numbers, self.max_numbers), self.max_number)
            if is_test_problem(nums, target) == want_test:
                return make_example(nums, target, self.render)

    def test_examples(self, seed: int = 1234) -> list[Example]:
        rng = random.Random(seed)
        examples = distinct_examples(lambda: self.sample(rng, "test"), self.test_size, 50 * self.test_size)
        if len(examples) == self.test_size:
            return examples
        raise UserError(f"task.test_size: only {len(examples)} distinct Countdown problems found; "
                        "raise task.countdown_max_number or lower task.test_size")
