"""The DeepSeek-R1-Zero output format and its reward.

DeepSeek-R1 (DeepSeek-AI 2025, section 2.2) trains R1-Zero with two rule-based rewards: accuracy,
and a format reward that asks the model to put its reasoning between <think> and </think> and its
answer between <answer> and </answer>. This module holds that template and the format check.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

R1_SYSTEM = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
    "The assistant first thinks about the reasoning process in the mind and then provides the user with "
    "the answer. The reasoning process and answer are enclosed within <think> </think> and <answer> "
    "</answer> tags, respectively, i.e., <think> reasoning process here </think> <answer> answer here </answer>."
)
# The completion starts after the template's "<think>", so the model writes the reasoning directly.
R1_TEMPLATE = R1_SYSTEM + " User: {prompt}. Assistant: <think>"
R1_FORMAT = re.compile(r"^\s*(<think>)?(?P<think>(?:(?!</?think>).)*?)</think>\s*<answer>(?P<answer>"
                       r"(?:(?!</?answer>).)*?)</answer>\s*$", re.DOTALL)


def r1_format(completions: list[str], **_: Sequence[object]) -> list[float | None]:
    """1.0 when a completion is exactly reasoning, </think>, then one <answer>...</answer>, else 0.0.

    The opening <think> may be part of the prompt (the R1 template ends with it), so it is optional;
    nothing but whitespace may follow </answer>, and neither block may nest another tag of its kind.

    >>> r1_format(["2 and 2 make 4</think> <answer>4</answer>", "<answer>4</answer>", "</think><answer>4"])
    [1.0, 0.0, 0.0]
    """
    return [float(R1_FORMAT.match(text) is not None) for text in completions]
