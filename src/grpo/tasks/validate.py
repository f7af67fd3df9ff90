"""Dataset validation before any model loads: every row of every file read, every problem collected.

A dataset with problems is refused with one line that lists the first `MAX_LISTED` of them as
`file:line: what is wrong`, then how many more, so a user fixes all of them in one go:

    3 problems in the data: data.jsonl:2: column 'answer' (answer) is missing; data.jsonl:5: column
    'prompt' (prompt) is empty; data.jsonl:7: prompt is 900 tokens once templated, over the limit of 232 ...

A `RowSpec` says which column plays which role and how each value is checked; its `build` turns a
checked row into an `Example` (and may refuse it, e.g. a GSM8K answer without "####"). The same
checks serve task files, `task.test_path` and DPO preference pairs (`grpo.tasks.pairs`). Every
refusing check and its message is listed in docs/reliability.md.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from grpo import dist
from grpo.errors import UserError
from grpo.tasks.api import Example
from grpo.tasks.readers import Row, json_kind, read_table

MAX_LISTED = 10
DROP_HINT = "set task.overlong_prompts=drop to skip such rows"
logger = logging.getLogger("grpo.data")


class DatasetError(UserError):
    """Dataset files with problems; `problems` holds each `file:line: what is wrong`."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__(describe(self.problems))


def describe(problems: Sequence[str]) -> str:
    """One line: the problem itself, or a count with the first MAX_LISTED and how many more."""
    problems = list(dict.fromkeys(problems))  # the same file given as train and test reports once
    if len(problems) == 1:
        text = problems[0]
    else:
        more = f"; and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
        text = f"{len(problems)} problems in the data: {'; '.join(problems[:MAX_LISTED])}{more}"
    overlong = any("tokens once templated, over the limit" in problem for problem in problems)
    return f"{text} ({DROP_HINT})" if overlong else text


def warn(message: str) -> None:
    """A data warning on the console (main rank only), like the trainer's own warnings."""
    if dist.is_main():
        logger.warning("warning: %s", message)


ValueCheck = Callable[[object], "str | None"]


def text_problem(value: object) -> str | None:
    """What is wrong with a value that must be non-empty text (None when it is fine)."""
    if value is None:
        return "is null"
    if not isinstance(value, str):
        return f"is {article(json_kind(value))}, not text"
    return unicode_problem(value) if value.strip() else "is empty"


def unicode_problem(text: str) -> str | None:
    """Text a tokenizer cannot encode: a lone UTF-16 surrogate (JSON allows writing one as \\ud800)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        return f"holds a lone surrogate ({text[error.start]!r}), which is not Unicode text"
    return None


def answer_problem(value: object) -> str | None:
    """What is wrong with a reference answer: text or a (finite) number, never null, empty or a container."""
    if isinstance(value, bool) or value is None or isinstance(value, (list, dict)):
        return "is null" if value is None else f"is {article(json_kind(value))}, not text or a number"
    if isinstance(value, float) and not math.isfinite(value):
        return f"is {value}, not a finite number"
    if isinstance(value, (int, float)):
        return None
    if not isinstance(value, str):
        return f"is a {type(value).__name__}, not text or a number"
    return unicode_problem(value) if value.strip() else "is empty"


def integer_problem(value: object) -> str | None:
    """What is wrong with a value that must be an integer (an integral number or its text)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return "is null" if value is None else f"is {article(json_kind(value))}, not an integer"
    if isinstance(value, float) and not value.is_integer() or isinstance(value, str) and not _is_int_text(value):
        return f"is {value!r}, not an integer"
    return None


def integer_list_problem(value: object) -> str | None:
    """What is wrong with a value that must be a non-empty list of integers."""
    if not isinstance(value, (list, tuple)):
        return "is null" if value is None else f"is {article(json_kind(value))}, not a list of integers"
    if not value:
        return "is an empty list"
    bad = [item for item in value if integer_problem(item) is not None]
    return f"holds {bad[0]!r}, not only integers" if bad else None


def article(kind: str) -> str:
    """`kind` with its indefinite article: 'an object', 'a string'."""
    return f"{'an' if kind[:1] in 'aeiou' else 'a'} {kind}"


def present(value: object) -> str | None:
    """Any value will do (extra columns handed to reward functions); only a missing column is reported."""
    return None


def answer_text(value: object) -> str:
    """A checked answer as text: numbers are read as they are written (`42`, `0.5`)."""
    return value if isinstance(value, str) else str(value)


def as_int(value: object) -> int:
    """A value that passed `integer_problem` as an int."""
    return int(value.strip()) if isinstance(value, str) else int(value)


def _is_int_text(text: str) -> bool:
    try:
        int(text.strip())
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Field:
    """A role (prompt, answer, nums, ...), the column that holds it, and the check its values pass."""

    role: str
    column: str
    check: ValueCheck


@dataclass(frozen=True)
class RowSpec:
    """How rows of one task are checked and turned into examples (`build` may raise ValueError)."""

    fields: tuple[Field, ...]
    build: Callable[[Mapping[str, object]], Example]


@dataclass(frozen=True)
class PromptBudget:
    """Prompts may be at most `max_tokens` tokens (`count_tokens`) once templated; `reason` says why;
    with `drop`, longer prompts are skipped (and counted) instead of refused."""

    count_tokens: Callable[[str], int]
    max_tokens: int
    reason: str
    drop: bool = False


@dataclass
class CheckedFile:
    """The examples of one file that passed, and how many rows were dropped for their length."""

    examples: list[Example]
    rows: int
    dropped: int


def missing_everywhere(rows: Sequence[Row], fields: Sequence[Field], path: str) -> tuple[set[str], list[str]]:
    """Columns that no row has (a wrong mapping, not a ragged file), with one problem for each."""
    objects = [row.data for row in rows if isinstance(row.data, dict)]
    names = sorted({str(name) for data in objects for name in data})
    missing = [f for f in fields if objects and not any(f.column in data for data in objects)]
    return {f.column for f in missing}, [
        f"{path}: no row has column '{f.column}' ({f.role}); its columns: {', '.join(names)}" for f in missing]


def row_problems(row: Row, fields: Sequence[Field], where: str, skip: set[str]) -> list[str]:
    """What is wrong with one row; columns in `skip` are already reported for the whole file."""
    if not isinstance(row.data, dict):
        return [f"{where}: {article(json_kind(row.data))}, not an object with named fields"]
    problems = []
    for f in fields:
        if f.column in skip:
            continue
        if f.column not in row.data:
            problems.append(f"{where}: column '{f.column}' ({f.role}) is missing")
        elif (what := f.check(row.data[f.column])) is not None:
            problems.append(f"{where}: column '{f.column}' ({f.role}) {what}")
    return problems


def check_file(path: str, key: str, split: str, spec: RowSpec, budget: PromptBudget | None,
               problems: list[str]) -> CheckedFile:
    """Read and check every row of `path`; problems are appended to `problems`, good rows returned."""
    table = read_table(path, key, split)
    found_here = [*table.problems]
    skip, whole = missing_everywhere(table.rows, spec.fields, path)
    found_here.extend(whole)
    checked = CheckedFile([], len(table.rows), 0)
    for row in table.rows:
        where = f"{path}:{row.line}"
        found = row_problems(row, spec.fields, where, skip)
        if skip and not found:  # already reported for the whole file: no example can be built
            continue
        if not found:
            try:
                example = spec.build(row.data)
            except ValueError as error:
                found = [f"{where}: {error}"]
        if found:
            found_here.extend(found)
            continue
        size = budget.count_tokens(example.prompt) if budget is not None else 0
        if budget is not None and size > budget.max_tokens:
            if budget.drop:
                checked.dropped += 1
                continue
            found_here.append(f"{where}: prompt is {size} tokens once templated, over the limit of "
                              f"{budget.max_tokens} ({budget.reason})")
            continue
        checked.examples.append(example)
    problems.extend(in_line_order(found_here, path))
    report_dropped(checked, path, budget, problems)
    return checked


def in_line_order(problems: Sequence[str], path: str) -> list[str]:
    """`problems` of one file sorted by line (whole-file problems first), so the listing reads top-down."""
    prefix = len(path) + 1

    def line(problem: str) -> int:
        head = problem[prefix:].split(":", 1)[0] if problem.startswith(f"{path}:") else ""
        return int(head) if head.isdigit() else 0

    return sorted(problems, key=line)


def report_dropped(checked: CheckedFile, path: str, budget: PromptBudget | None, problems: list[str]) -> None:
    """Print how many rows `task.overlong_prompts=drop` skipped; a file left with none is a problem."""
    if budget is None or not checked.dropped:
        return
    if not checked.examples and checked.dropped == checked.rows:
        problems.append(f"{path}: every prompt is over {budget.max_tokens} tokens once templated ({budget.reason}), "
                        "so task.overlong_prompts=drop leaves no rows")
        return
    warn(f"dropped {checked.dropped} of {checked.rows} rows of {path}: their prompts are over "
         f"{budget.max_tokens} tokens once templated ({budget.reason}; task.overlong_prompts=drop)")


def warn_duplicates(train: Sequence[Example], test: Sequence[Example], train_path: str, test_path: str | None) -> int:
    """Warn when held-out prompts also appear in training; returns how many do."""
    seen = {example.prompt for example in train}
    count = sum(example.prompt in seen for example in test)
    if count:
        where = (f"{test_path} also appear in {train_path}" if test_path is not None
                 else f"held out of {train_path} also appear among its training rows (the file repeats them)")
        warn(f"{count} of {len(test)} held-out prompts {where}, so held-out accuracy overstates what was "
             "learned; remove the duplicates")
    return count


def raise_problems(problems: Sequence[str]) -> None:
    """Raise one `DatasetError` if anything was found."""
    if problems:
        raise DatasetError(problems)
