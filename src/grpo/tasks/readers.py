"""Reading dataset files row by row, keeping each row's line, and collecting what cannot be read.

Every reader returns a `Table`: the rows it could read, each with the line (JSONL, JSON, CSV) or the
1-based row number (Parquet, saved datasets) it came from, and the problems it met as
`file:line: what is wrong` strings. Nothing is raised for bad content, so one pass can report every
problem of every file together (`grpo.tasks.validate`). Only our own readers touch JSON and CSV
bytes, so non-UTF-8 bytes, a non-object line or a ragged CSV row are reported, never guessed at.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from grpo.textcheck import decode_utf8, encoding_problem

SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")
CSV_FIELD_LIMIT = 1 << 30  # the csv module's default (128 KiB) would refuse a long prompt with an obscure error
INTEGER = re.compile(r"[-+]?\d+")


@dataclass(frozen=True)
class Row:
    """One record and where it came from; `data` is a dict for a well-formed row, anything else is reported."""

    line: int
    data: object


@dataclass
class Table:
    """What one file gave: the rows read and the problems found while reading."""

    rows: list[Row] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def read_table(path: str, key: str, split: str) -> Table:
    """Every row of the dataset at `path` (named by config key `key`); `split` picks a DatasetDict split."""
    location = Path(path).expanduser()
    if not location.exists():
        return Table(problems=[f"{key}: {path} does not exist"])
    if location.is_dir():
        return _saved_dataset(location, path, key, split)
    suffix = location.suffix.lower()
    if suffix not in SUFFIXES:
        return Table(problems=[f"{key}: {location.name} is not .jsonl, .json, .parquet or .csv "
                               "(or a dataset directory)"])
    try:
        data = location.read_bytes()
    except OSError as error:
        return Table(problems=[f"{key}: cannot read {path} ({error.strerror or error})"])
    if not data.strip():
        return Table(problems=[f"{path}: the file is empty"])
    if suffix == ".parquet":
        return _parquet(location, path)
    problem = encoding_problem(data)
    if problem is not None:
        return Table(problems=[f"{path}: {problem}"])
    readers: dict[str, Callable[[bytes, str], Table]] = {".jsonl": _jsonl, ".json": _json, ".csv": _csv}
    table = readers[suffix](data, path)
    if not table.rows and not table.problems:
        why = {".jsonl": "only blank lines", ".json": "an empty array", ".csv": "only blank lines and a header"}
        table.problems.append(f"{path}: no rows ({why[suffix]})")
    return table


def _decode_line(raw: bytes, where: str, problems: list[str]) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        problems.append(f"{where}: bytes that are not UTF-8 (0x{raw[error.start]:02x} at byte {error.start + 1})")
        return None


class RepeatedKey(ValueError):
    """A JSON object names the same key twice (json.loads would silently keep the last)."""


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    record = dict(pairs)
    if len(record) != len(pairs):
        seen: set[str] = set()
        repeated = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise RepeatedKey(f"key '{repeated}' appears twice in one object")
    return record


DECODER = json.JSONDecoder(object_pairs_hook=_unique_keys)


def parse_json(text: str) -> tuple[object, str | None]:
    """(value, None) for valid JSON text, else (None, why not)."""
    try:
        return DECODER.decode(text), None
    except (ValueError, RecursionError) as error:
        return None, json_error(error)


def json_error(error: ValueError | RecursionError) -> str:
    """Why JSON text was refused, in one line."""
    if isinstance(error, RepeatedKey):
        return str(error)
    if isinstance(error, json.JSONDecodeError):
        return f"not valid JSON ({error.msg} at column {error.colno})"
    if isinstance(error, RecursionError):
        return "not valid JSON (nested too deeply)"
    return f"not valid JSON ({str(error).splitlines()[0]})"  # e.g. an integer longer than Python converts


def _jsonl(data: bytes, path: str) -> Table:
    table = Table()
    for number, raw in enumerate(data.removeprefix(b"\xef\xbb\xbf").split(b"\n"), start=1):
        if not raw.strip():
            continue
        where = f"{path}:{number}"
        text = _decode_line(raw, where, table.problems)
        if text is None:
            continue
        value, problem = parse_json(text)
        if problem is not None:
            table.problems.append(f"{where}: {problem}")
        else:
            table.rows.append(Row(number, value))
    return table


def _decode_whole(data: bytes, path: str) -> tuple[str | None, str | None]:
    text, problem = decode_utf8(data)
    return text, None if problem is None else f"{path}:{problem.removeprefix('line ')}"


def _json(data: bytes, path: str) -> Table:
    """A JSON array of row objects, or one object per line (as `datasets` accepts for .json)."""
    text, problem = _decode_whole(data, path)
    if text is None:
        return Table(problems=[problem])
    if not text.lstrip().startswith("["):
        value, problem = parse_json(text)
        if problem is None and not isinstance(value, dict) or isinstance(value, dict) and "\n" in text.strip():
            kind = "one JSON object" if isinstance(value, dict) else f"a JSON {json_kind(value)}"
            return Table(problems=[f"{path}: holds {kind}; expected an array of row objects or one object per line"])
        return _jsonl(data, path)
    return _json_array(text, path)


def _json_array(text: str, path: str) -> Table:
    """The elements of a top-level array, each with the line it starts on."""
    decoder, table = DECODER, Table()
    line_of = lambda index: text.count("\n", 0, index) + 1
    blank = re.compile(r"\s*")
    index = blank.match(text, text.index("[") + 1).end()
    if text[index:index + 1] == "]":
        return table
    while True:
        try:
            value, end = decoder.raw_decode(text, index)
        except (ValueError, RecursionError) as error:
            table.problems.append(f"{path}:{line_of(index)}: {json_error(error)}; rows after it were not read")
            return table
        table.rows.append(Row(line_of(index), value))
        index = blank.match(text, end).end()
        if text[index:index + 1] == ",":
            index = blank.match(text, index + 1).end()
        elif text[index:index + 1] == "]" and not text[index + 1:].strip():
            return table
        else:
            table.problems.append(f"{path}:{line_of(index)}: not valid JSON (expected ',' or ']' after a row)")
            return table


def _csv(data: bytes, path: str) -> Table:
    """Rows under the header line; columns whose every non-empty cell is a number are read as numbers."""
    text, problem = _decode_whole(data, path)
    if text is None:
        return Table(problems=[problem])
    csv.field_size_limit(CSV_FIELD_LIMIT)
    reader, table = csv.reader(io.StringIO(text, newline="")), Table()
    header, records, line = None, [], 1
    try:
        for record in reader:
            start, line = line, reader.line_num + 1
            if not record or not any(cell.strip() for cell in record):
                continue
            if header is None:
                header = record
                repeated = sorted({name for name in record if record.count(name) > 1})
                if repeated:
                    table.problems.append(f"{path}:{start}: the header names column '{repeated[0]}' twice")
                continue
            if len(record) != len(header):
                table.problems.append(f"{path}:{start}: {len(record)} field{'s' if len(record) != 1 else ''}, "
                                      f"but the header has {len(header)}")
                continue
            records.append((start, record))
    except csv.Error as error:
        table.problems.append(f"{path}:{reader.line_num}: not valid CSV ({error})")
    if header is not None:
        columns = [_typed_column([record[i] for _, record in records]) for i in range(len(header))]
        table.rows = [Row(start, {name: columns[i][n] for i, name in enumerate(header)})
                      for n, (start, _) in enumerate(records)]
    return table


def _typed_column(cells: list[str]) -> list[object]:
    """Cells as ints (or floats) when every non-empty one is a number, as pandas and `datasets` read them."""
    filled = [cell.strip() for cell in cells if cell.strip()]
    if filled and all(INTEGER.fullmatch(cell) for cell in filled):
        return [int(cell) if cell.strip() else cell for cell in cells]
    try:
        floats = [float(cell) for cell in filled]
    except ValueError:
        return list(cells)
    if filled and all(math.isfinite(value) for value in floats):
        return [float(cell) if cell.strip() else cell for cell in cells]
    return list(cells)


def _parquet(location: Path, path: str) -> Table:
    import pyarrow  # a dependency of `datasets`; imported here because only Parquet files need it
    import pyarrow.parquet

    try:
        records = pyarrow.parquet.read_table(location).to_pylist()
    except (pyarrow.ArrowException, OSError) as error:
        return Table(problems=[f"{path}: cannot read as Parquet ({str(error).splitlines()[0]})"])
    table = Table([Row(number, record) for number, record in enumerate(records, start=1)])
    if not table.rows:
        table.problems.append(f"{path}: no rows")
    return table


def _saved_dataset(location: Path, path: str, key: str, split: str) -> Table:
    import datasets  # heavy; only saved dataset directories need it

    datasets.disable_progress_bars()
    try:
        loaded = datasets.load_from_disk(str(location))
    except FileNotFoundError as error:
        return Table(problems=[f"{key}: {path} is not a saved dataset directory ({error})"])
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            return Table(problems=[f"task.split: {path} has no split {split!r} (has {', '.join(loaded)})"])
        loaded = loaded[split]
    table = Table([Row(number, dict(record)) for number, record in enumerate(loaded, start=1)])
    if not table.rows:
        table.problems.append(f"{path}: no rows")
    return table


def json_kind(value: object) -> str:
    """How JSON would name the type of `value` (object, array, string, number, boolean, null)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {dict: "object", list: "array", str: "string"}.get(type(value), type(value).__name__)
