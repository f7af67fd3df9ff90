"""Metric sinks: where per-step numbers go. Only the main rank gets a real sink."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Protocol


class MetricSink(Protocol):
    """Receives one mapping of numbers per step, and now and then a table of sample completions."""

    def log(self, step: int, values: dict[str, float]) -> None: ...

    def log_samples(self, step: int, records: list[dict[str, object]]) -> None: ...

    def close(self) -> None: ...


class NullSink:
    """Accepts everything, writes nothing (non-main ranks, tests)."""

    def log(self, step: int, values: dict[str, float]) -> None:
        return None

    def log_samples(self, step: int, records: list[dict[str, object]]) -> None:
        return None

    def close(self) -> None:
        return None


def _clean(value: float) -> float | None:
    return value if math.isfinite(value) else None  # JSON has no NaN; null says "not a number"


class JsonlSink:
    """Appends one JSON object per step to a file, flushed at once so a crash loses nothing."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = path.open("a", encoding="utf-8")

    def log(self, step: int, values: dict[str, float]) -> None:
        row = {"step": step, **{key: _clean(float(value)) for key, value in values.items()}}
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()

    def log_samples(self, step: int, records: list[dict[str, object]]) -> None:
        return None  # samples go to samples.jsonl through JsonlRecords

    def close(self) -> None:
        self._file.close()


class JsonlRecords:
    """Appends free-form records (sample completions) as JSON lines."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, records: list[dict[str, object]]) -> None:
        with self.path.open("a", encoding="utf-8") as file:
            for record in records:
                file.write(json.dumps(record) + "\n")
