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
from collections.abc import Callable

from grpo.errors import UserError
from grpo.sandbox.tests_format import SuiteFormatError, parse_suite
from grpo.tasks.api import Example
from grpo.tasks.validate import Row, check_rows

TEST_KEYS = ("entry_point", "fn_name", "test", "test_list", "test_setup_code", "cases", "inputs", "outputs",
             "input_output")
PROMPT_COLUMNS = ("prompt", "text", "question", "problem")


def prompt_column(rows: list[dict], mapping: dict[str, str], source: str) -> str:
    """The column that holds the problem statement."""
    if "prompt" in mapping:
        return mapping["prompt"]
    for name in PROMPT_COLUMNS:
        if name in rows[0]:
            return name
    raise UserError(f"task.columns: {source} has none of the columns {', '.join(PROMPT_COLUMNS)}; map the prompt "
                    f"role, e.g. task.columns={{prompt: description}} (its columns: {', '.join(sorted(rows[0]))})")


def code_examples(rows: list[dict], mapping: dict[str, str], render: Callable[[str], str],
                  source: str) -> list[Example]:
    """Examples whose `tests` column holds each row's tests as JSON. Every row is checked first, in the
    validation pass of `grpo.tasks.validate`: one error lists each row's problem with its line."""
    column = prompt_column(rows, mapping, source)
    tests_of, problems = [], []
    for line, row in enumerate(rows, start=1):
        tests = {key: row[key] for key in TEST_KEYS if row.get(key) not in (None, "", [])}
        try:
            parse_suite(tests)
        except (SuiteFormatError, ValueError) as error:
            problems.append(f"{source}:{line}: tests: {error}")
        tests_of.append(tests)
    check_rows([Row(line, row) for line, row in enumerate(rows, start=1)], source, {"prompt": column},
               earlier=problems)
    return [Example(render(str(row[column])), "", {"tests": json.dumps(tests, sort_keys=True)})
            for row, tests in zip(rows, tests_of)]
