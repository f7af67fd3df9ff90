"""Code tasks from files: function-style (MBPP, HumanEval JSONL) and stdin/stdout (APPS, CodeContests).

Each row gives a problem statement and its tests. The statement comes from the column mapped to the
`prompt` role (default: the first of `prompt`, `text`, `question`, `problem` the file has); the tests
are the row's test fields, whichever it has: `entry_point` with `test` (HumanEval) or `test_list`
(MBPP, plus `test_setup_code`), `cases`, `inputs`/`outputs`, or APPS' `input_output` (with `fn_name`).
They travel to the reward as the `tests` column, a JSON string, and are parsed when the file is read,
so malformed rows fail before any model loads, all of them listed with their lines in one error.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

from grpo.errors import UserError
from grpo.sandbox.tests_format import parse_suite
from grpo.tasks.api import Example
from grpo.tasks.readers import read_table
from grpo.tasks.validate import Field, RowSpec, text_problem

TEST_KEYS = ("entry_point", "fn_name", "test", "test_list", "test_setup_code", "cases", "inputs", "outputs",
             "input_output")
PROMPT_COLUMNS = ("prompt", "text", "question", "problem")


def prompt_column(path: str, split: str, mapping: Mapping[str, str]) -> str:
    """The column that holds the problem statement: the mapped one, else the first of PROMPT_COLUMNS
    that the file's first row has (an unreadable file is left to the validation pass to report)."""
    if "prompt" in mapping:
        return mapping["prompt"]
    rows = [row.data for row in read_table(path, "task.train_path", split).rows if isinstance(row.data, dict)]
    if not rows:
        return PROMPT_COLUMNS[0]
    for name in PROMPT_COLUMNS:
        if name in rows[0]:
            return name
    raise UserError(f"task.columns: {path} has none of the columns {', '.join(PROMPT_COLUMNS)}; map the prompt "
                    f"role, e.g. task.columns={{prompt: description}} (its columns: {', '.join(sorted(rows[0]))})")


def code_spec(column: str, render: Callable[[str], str], extras: tuple[Field, ...] = ()) -> RowSpec:
    """Rows with a problem statement in `column` and tests in any of TEST_KEYS, checked in the one
    validation pass of `grpo.tasks.validate`; the example's `tests` column holds the tests as JSON.
    `extras` are further mapped roles, passed on as columns: `code_prefix` (HumanEval's prompt, say)
    makes the graded program that prefix followed by the completion as written."""

    def build(row: Mapping[str, object]) -> Example:
        tests = {key: row[key] for key in TEST_KEYS if row.get(key) not in (None, "", [])}
        try:
            parse_suite(tests)
        except ValueError as error:  # SuiteFormatError included: the message names the problem
            raise ValueError(f"tests: {error}") from None
        columns = {extra.role: row[extra.column] for extra in extras}
        return Example(render(str(row[column])), "", {**columns, "tests": json.dumps(tests, sort_keys=True)})

    return RowSpec((Field("prompt", column, text_problem), *extras), build)
