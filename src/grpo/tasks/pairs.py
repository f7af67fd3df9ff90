"""DPO preference pairs (`dpo.data`): every row read and checked like a task file, before any model loads.

Each row needs non-empty text in `prompt`, `chosen` and `rejected`, with `chosen` different from
`rejected` (an identical pair has zero gradient and only dilutes the batch). With a `PairLimit`, the
prompt plus the longer response (and its EOS) must fit the model's context. Any JSONL, JSON, CSV or
Parquet file (or saved dataset) is read the same way as task data (`grpo.tasks.readers`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from grpo.tasks.readers import read_table
from grpo.tasks.validate import Field, in_line_order, missing_everywhere, raise_problems, row_problems, text_problem

PAIR_FIELDS = tuple(Field(name, name, text_problem) for name in ("prompt", "chosen", "rejected"))
KEY = "dpo.data"


@dataclass(frozen=True)
class PairLimit:
    """`length(pair)` tokens (prompt + longer response + EOS) may be at most `max_tokens`; `reason` says why."""

    length: Callable[[dict[str, str]], int]
    max_tokens: int
    reason: str


def check_pairs(path: str, limit: PairLimit | None, problems: list[str]) -> list[dict[str, str]]:
    """The pairs of `path` that pass; every problem is appended to `problems` as `file:line: ...`."""
    table = read_table(path, KEY, "train")
    found = [*table.problems]
    skip, whole = missing_everywhere(table.rows, PAIR_FIELDS, path)
    found.extend(whole)
    pairs = []
    for row in table.rows:
        where = f"{path}:{row.line}"
        wrong = row_problems(row, PAIR_FIELDS, where, skip)
        if skip or wrong:
            found.extend(wrong)
            continue
        pair = {f.column: row.data[f.column] for f in PAIR_FIELDS}
        if pair["chosen"] == pair["rejected"]:
            found.append(f"{where}: chosen and rejected are the same text, so the pair teaches nothing")
        elif limit is not None and (size := limit.length(pair)) > limit.max_tokens:
            found.append(f"{where}: prompt and longer response are {size} tokens, over the limit of "
                            f"{limit.max_tokens} ({limit.reason})")
        else:
            pairs.append(pair)
    problems.extend(in_line_order(found, path))
    return pairs


def preference_pairs(path: Path) -> list[dict[str, str]]:
    """The (prompt, chosen, rejected) records of a preference file; any problem raises one `DatasetError`."""
    problems: list[str] = []
    pairs = check_pairs(str(path), None, problems)
    raise_problems(problems)
    return pairs
