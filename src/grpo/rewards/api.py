"""The reward contract: plain functions scoring a batch of completions.

A reward function is called as `fn(completions, **columns)`, where `completions` is a list of N
decoded completion strings and each column (for example `answer`) is a list of N values from the
dataset rows the completions answer. It returns N floats, or `None` for a completion it cannot
score; `None` is excluded from the group baseline instead of counting as zero.

    >>> exact_answer(["2+12=14", "4*6=24"], answer=["14", "14"])
    [1.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol


class RewardFn(Protocol):
    """What every reward function looks like (see the module docstring)."""

    def __call__(self, completions: list[str], **columns: Sequence[object]) -> list[float | None]: ...


def final_answer(completion: str) -> str:
    """The text after the completion's last "=" (all of it when there is none), stripped."""
    return completion.rsplit("=", 1)[-1].strip()


def exact_answer(completions: list[str], answer: Sequence[object], **_: Sequence[object]) -> list[float | None]:
    """1.0 when the final answer is exactly the reference string, else 0.0.

    >>> exact_answer(["3+24=27", "27 ", "2+7", "=27="], answer=["27"] * 4)
    [1.0, 1.0, 0.0, 0.0]
    """
    return [float(final_answer(text) == str(ref).strip()) for text, ref in zip(completions, answer)]


BUILTIN_REWARDS: dict[str, Callable[..., list[float | None]]] = {"exact_answer": exact_answer}
