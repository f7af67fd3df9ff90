"""The live progress bar (rich), and its silent stand-in for non-main ranks and quiet runs."""

from __future__ import annotations

from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class ProgressBar(Protocol):
    def update(self, step: int, values: dict[str, float]) -> None: ...

    def close(self) -> None: ...


class NullProgress:
    def update(self, step: int, values: dict[str, float]) -> None:
        return None

    def close(self) -> None:
        return None


class RichProgress:
    """Step counter with reward, held-out accuracy and KL beside the bar."""

    def __init__(self, total: int, console: Console) -> None:
        self._progress = Progress(
            TextColumn("[bold]GRPO"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
        )
        self._task = self._progress.add_task("train", total=total, info="")
        self._accuracy: float | None = None
        self._progress.start()

    def update(self, step: int, values: dict[str, float]) -> None:
        self._accuracy = values.get("eval_accuracy", self._accuracy)
        accuracy = "-" if self._accuracy is None else f"{self._accuracy:.3f}"
        info = (
            f"reward {values.get('reward_mean', float('nan')):.3f}  acc {accuracy}  "
            f"kl {values.get('kl', 0.0):.4f}"
        )
        self._progress.update(self._task, completed=step, info=info)

    def close(self) -> None:
        self._progress.stop()
