"""The code-execution reward: extract the program, run it through `grpo.sandbox`, score the verdicts.

`extract_code` takes the program out of a completion: the inside of R1 `<answer>` tags when present,
then the last fenced code block (```python or plain ```), else the whole text. `CodeReward` grades
every completion against its row's tests (the `tests` column: a JSON object in either format of
`grpo.sandbox.tests_format`) on a sandbox pool, in parallel up to the pool's size. A row with a
`code_prefix` column (code its prompt already opened, such as "def f(x):return ") is graded as that
prefix followed by the completion. Identical programs with identical tests in one call are graded
once (a group of G samples often repeats itself) and share the grade. The score is the
share of tests passed (`partial_credit`) or 1/0. A completion whose grading met a sandbox error
scores None, which leaves the group's baseline instead of counting as a wrong program; when more
than `max_error_share` of a batch meets sandbox errors for `max_error_steps` calls in a row, the
reward raises `RewardAbort` and the run stops with that message.

The reward itself is trusted code and runs in the trainer's process (`runs_in_trainer`); what it runs
is not, and that runs in the sandbox.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from functools import lru_cache

from grpo.rewards.guard import RewardAbort
from grpo.sandbox.grade import Grader
from grpo.sandbox.layers import LAYERS
from grpo.sandbox.pool import SandboxPool
from grpo.sandbox.runner import Limits
from grpo.sandbox.tests_format import Suite, SuiteFormatError, parse_suite

_ANSWER = re.compile(r"<answer>(.*?)(?:</answer>|\Z)", re.DOTALL)
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)


def extract_code(completion: str) -> str:
    """The program in a completion (see the module docstring).

    >>> extract_code("Here:\\n```python\\nprint(1)\\n```\\nDone.")
    'print(1)\\n'
    >>> extract_code("<think>hm</think><answer>def f(x):\\n    return x</answer>")
    'def f(x):\\n    return x'
    """
    answers = _ANSWER.findall(completion)
    text = answers[-1] if answers else completion
    blocks = [body for language, body in _FENCE.findall(text) if language.lower() in ("", "python", "py", "python3")]
    return blocks[-1] if blocks else text.strip("\n")


@lru_cache(maxsize=8)
def shared_pool(limits: Limits, workers: int, minimum: tuple[str, ...]) -> SandboxPool:
    """One sandbox pool per distinct setting, shared by every code reward in the process."""
    return SandboxPool(workers=workers, limits=limits, minimum=minimum)


@lru_cache(maxsize=4096)
def _suite(tests: str) -> Suite:
    return parse_suite(tests)


def suite_of(tests: object) -> Suite:
    """The parsed suite of a `tests` column value (a JSON string or an object)."""
    return _suite(_tests_key(tests))


def program_of(completion: str, code_prefix: object = None) -> str:
    """The program a completion stands for: with a `code_prefix` (the code its prompt opened, e.g.
    "def f(x):return "), that prefix followed by the completion as written; else `extract_code`."""
    if code_prefix:
        return str(code_prefix) + completion
    return extract_code(completion)


def _tests_key(tests: object) -> str:
    return tests if isinstance(tests, str) else json.dumps(tests, sort_keys=True)


class CodeReward:
    """Grades programs in completions against their rows' tests; see the module docstring."""

    runs_in_trainer = True  # trusted: it only sends the programs to the sandbox

    def __init__(self, limits: Limits | None = None, workers: int = 0, minimum: Sequence[str] | None = None,
                 partial_credit: bool = True, max_error_share: float = 0.5, max_error_steps: int = 3,
                 name: str = "code", pool: SandboxPool | None = None) -> None:
        self.__name__ = name
        self._pool = pool
        self._options = (limits or Limits(timeout_s=5.0), workers, tuple(minimum) if minimum is not None else LAYERS)
        self.partial_credit = partial_credit
        self.max_error_share, self.max_error_steps = max_error_share, max_error_steps
        self.error_streak = 0
        self.last_error = ""

    @property
    def pool(self) -> SandboxPool:
        """The sandbox pool for these settings, started (and its layers checked) on first use, then shared."""
        return self._pool if self._pool is not None else shared_pool(*self._options)

    def __call__(self, completions: list[str], tests: Sequence[object],
                 code_prefix: Sequence[object] | None = None, **_: Sequence[object]) -> list[float | None]:
        """One score per completion; identical (program, tests) pairs are graded once and share it."""
        grader = Grader(self.pool, partial_credit=self.partial_credit)
        prefixes = code_prefix if code_prefix is not None else [None] * len(completions)
        keys = [(program_of(text, prefix), _tests_key(value)) for text, prefix, value in
                zip(completions, prefixes, tests)]
        distinct = list(dict.fromkeys(keys))  # first occurrences, in order
        suites = []
        for _, value in distinct:
            try:
                suites.append(suite_of(value))
            except SuiteFormatError as error:
                raise ValueError(f"a row's tests are malformed: {error}") from None
        graded = self.pool.parallel(grader.grade, [program for program, _ in distinct], suites)
        grade_of = dict(zip(distinct, graded))
        grades = [grade_of[key] for key in keys]
        scores = [grade.score for grade in grades]
        self._watch_errors(scores, grades)
        return scores

    def _watch_errors(self, scores: list[float | None], grades: list) -> None:
        errors = sum(score is None for score in scores)
        if errors:
            self.last_error = next((d for g in grades if g.score is None for d in g.details if d), "sandbox error")
        share = errors / max(1, len(scores))
        self.error_streak = self.error_streak + 1 if share > self.max_error_share else 0
        if self.error_streak >= self.max_error_steps:
            raise RewardAbort(f"the code sandbox failed for {share:.0%} of a batch in {self.error_streak} calls in a "
                              f"row (task.sandbox.max_error_share={self.max_error_share:g}, max_error_steps="
                              f"{self.max_error_steps}); last error: {self.last_error[:200]}")
