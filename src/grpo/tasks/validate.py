"""Dataset validation before any model loads: every problem of every row, found in one pass.

A file dataset is refused with one line that lists each problem with its file and line (the first
`MAX_LISTED`, then a count), so a user fixes all of them at once instead of one per run:

    data.jsonl: 3 problems: data.jsonl:2: no column 'question' (the prompt column); data.jsonl:5:
    empty prompt; data.jsonl:7: prompt is 80 tokens, over the limit of 64

Readers of other formats (Parquet, CSV, `datasets`) turn their rows into `Row`s and call
`check_rows`, so every format reports problems the same way.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from grpo.errors import UserError

MAX_LISTED = 10


class DatasetError(UserError):
    """A dataset is missing, empty or has malformed rows; the message lists every problem found."""


@dataclass(frozen=True)
class Row:
    """One dataset record with where it came from: `line` is 1-based (the row number for tables)."""

    line: int
    data: object  # a mapping for a well-formed row; anything else is reported


@dataclass(frozen=True)
class PromptLimit:
    """Prompts may be at most `max_tokens` tokens as counted by `count_tokens`; `key` names the setting."""

    count_tokens: Callable[[str], int]
    max_tokens: int
    key: str


def read_jsonl_rows(path: Path) -> tuple[list[Row], list[str]]:
    """The rows of a JSON-lines file and the problems of lines that are not JSON objects (blank lines skipped)."""
    if not path.is_file():
        raise DatasetError(f"dataset file not found: {path}")
    rows, problems = [], []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                rows.append(Row(number, json.loads(line)))
            except json.JSONDecodeError as error:
                problems.append(f"{path}:{number}: not valid JSON ({error.msg} at column {error.colno})")
    return rows, problems


def row_problems(row: Row, source: str, columns: Mapping[str, str], prompt_role: str,
                 limit: PromptLimit | None) -> list[str]:
    """What is wrong with one row: not an object, mapped columns missing, empty or too long prompt."""
    where = f"{source}:{row.line}"
    if not isinstance(row.data, dict):
        return [f"{where}: expected a JSON object, got {type(row.data).__name__}"]
    problems = [f"{where}: no column '{column}' (the {role} column)"
                for role, column in columns.items() if column not in row.data]
    prompt_column = columns.get(prompt_role)
    prompt = row.data.get(prompt_column) if prompt_column is not None else None
    if prompt_column in row.data:
        if not isinstance(prompt, str):
            problems.append(f"{where}: the prompt column '{prompt_column}' holds {type(prompt).__name__}, not text")
        elif not prompt.strip():
            problems.append(f"{where}: empty prompt in column '{prompt_column}'")
        elif limit is not None and (size := limit.count_tokens(prompt)) > limit.max_tokens:
            problems.append(f"{where}: prompt is {size} tokens, over the limit of {limit.max_tokens} ({limit.key})")
    return problems


def check_rows(rows: Iterable[Row], source: str, columns: Mapping[str, str], prompt_role: str = "prompt",
               limit: PromptLimit | None = None, earlier: Iterable[str] = ()) -> int:
    """Raise one `DatasetError` listing every problem of `rows` (after `earlier` ones); returns the row count.

    `columns` maps each role the task needs (prompt, answer, ...) to its column name in the data.
    """
    problems, count = list(earlier), 0
    for row in rows:
        count += 1
        problems.extend(row_problems(row, source, columns, prompt_role, limit))
    if count == 0 and not problems:
        problems.append(f"{source}: the dataset is empty (no rows)")
    if problems:
        listed = "; ".join(problems[:MAX_LISTED])
        more = f"; and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
        raise DatasetError(f"{source}: {len(problems)} problem(s): {listed}{more}")
    return count


def validate_jsonl(path: Path, columns: Mapping[str, str], prompt_role: str = "prompt",
                   limit: PromptLimit | None = None) -> list[dict]:
    """The rows of a JSONL dataset after checking all of them; any problem raises one `DatasetError`."""
    rows, problems = read_jsonl_rows(path)
    check_rows(rows, str(path), columns, prompt_role, limit, problems)
    return [row.data for row in rows]
