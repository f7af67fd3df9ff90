"""Tasks read from your own data: JSONL, JSON, Parquet, CSV or a saved dataset, through `datasets`.

A column mapping says which dataset column plays which role: `prompt` (the question), `answer`
(the reference), and any other role name, whose values reward functions receive as keyword
columns. Without a separate test file, `test_size` rows chosen by a fixed seed are held out of the
training file, so train and test never share a row.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from grpo.errors import UserError
from grpo.tasks.api import Example

BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}
HOLDOUT_SEED = 1234

Row = Mapping[str, object]


def load_rows(path: str, split: str, key: str) -> list[dict[str, object]]:
    """Every row of a dataset file or saved dataset directory, as dicts."""
    import datasets  # imported here: it is heavy and only file-backed tasks need it

    datasets.disable_progress_bars()
    location = Path(path).expanduser()
    if not location.exists():
        raise UserError(f"{key}: {location} does not exist")
    if location.is_dir():
        try:
            loaded = datasets.load_from_disk(str(location))
        except FileNotFoundError as error:
            raise UserError(f"{key}: {location} is not a saved dataset directory ({error})") from None
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise UserError(f"task.split: {location} has no split {split!r} (has {', '.join(loaded)})")
            loaded = loaded[split]
    else:
        builder = BUILDERS.get(location.suffix.lower())
        if builder is None:
            raise UserError(f"{key}: {location.name} is not .jsonl, .json, .parquet or .csv (or a dataset directory)")
        try:
            loaded = datasets.load_dataset(builder, data_files=str(location), split="train")
        except (ValueError, datasets.exceptions.DatasetGenerationError) as error:
            raise UserError(f"{key}: cannot read {location} as {builder} ({str(error).splitlines()[0]})") from None
    if len(loaded) == 0:
        raise UserError(f"{key}: {location} has no rows")
    return [dict(row) for row in loaded]


def check_columns(rows: list[dict[str, object]], mapping: Mapping[str, str], source: str) -> None:
    """Every mapped column must exist in the data; the error lists the columns that do."""
    present = set(rows[0])
    missing = [f"{role}->{column}" for role, column in mapping.items() if column not in present]
    if missing:
        raise UserError(f"task.columns: {source} has no column for {', '.join(missing)} "
                        f"(its columns: {', '.join(sorted(present))})")


def to_examples(
    rows: list[dict[str, object]],
    mapping: Mapping[str, str],
    question: Callable[[Row], str],
    reference: Callable[[str], str],
    render: Callable[[str], str],
    source: str,
) -> list[Example]:
    """Examples from rows: rendered prompt, parsed reference answer, the other roles as columns."""
    check_columns(rows, mapping, source)
    extra = {role: column for role, column in mapping.items() if role not in ("prompt", "answer")}
    examples = []
    for index, row in enumerate(rows):
        try:
            answer = reference(str(row[mapping["answer"]])) if "answer" in mapping else ""
        except ValueError as error:
            raise UserError(f"{source} row {index + 1}: {error}") from None
        columns = {role: row[column] for role, column in extra.items()}
        examples.append(Example(render(question(row)), answer, columns))
    return examples


def split_holdout(examples: list[Example], test_size: int, source: str) -> tuple[list[Example], list[Example]]:
    """(train, test): `test_size` examples chosen with a fixed seed are held out of training."""
    if test_size >= len(examples):
        raise UserError(f"task.test_size ({test_size}) leaves no training rows in {source} "
                        f"({len(examples)} rows); lower it or set task.test_path")
    order = list(range(len(examples)))
    random.Random(HOLDOUT_SEED).shuffle(order)
    held = set(order[:test_size])
    return [e for i, e in enumerate(examples) if i not in held], [examples[i] for i in order[:test_size]]


@dataclass(frozen=True)
class ListTask:
    """A task over fixed lists of examples; training draws uniformly with the caller's RNG."""

    train: tuple[Example, ...]
    test: tuple[Example, ...]

    def sample(self, rng: random.Random, split: str) -> Example:
        pool = self.test if split == "test" else self.train
        return pool[rng.randrange(len(pool))]

    def test_examples(self) -> list[Example]:
        return list(self.test)
