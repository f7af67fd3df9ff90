"""Metric sinks beyond metrics.jsonl: TensorBoard, Weights & Biases, and a fan-out to several.

Each follows `grpo.run.metrics.MetricSink`; the run's services build them on the main rank only.
Sample completions become a text table in TensorBoard and a `wandb.Table` in W&B.
"""

from __future__ import annotations

import math
from pathlib import Path

from grpo.errors import UserError
from grpo.run.metrics import MetricSink

TABLE_COLUMNS = ("prompt", "completion", "reward", "advantage")
TEXT_LIMIT = 400  # characters of a prompt or completion shown in a table cell


def _cell(value: object) -> str:
    text = f"{value:.3f}" if isinstance(value, float) else str(value)
    text = text if len(text) <= TEXT_LIMIT else "..." + text[-TEXT_LIMIT:]
    return text.replace("|", "\\|").replace("\n", " ⏎ ")


def markdown_table(records: list[dict[str, object]]) -> str:
    """Records as a Markdown table (TensorBoard's text plugin renders Markdown)."""
    columns = [c for c in TABLE_COLUMNS if any(c in r for r in records)]
    header = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns)
    rows = ["| " + " | ".join(_cell(r.get(c, "")) for c in columns) + " |" for r in records]
    return "\n".join([header, *rows])


class FanOutSink:
    """Sends everything to each of several sinks, in order."""

    def __init__(self, sinks: list[MetricSink]) -> None:
        self.sinks = sinks

    def log(self, step: int, values: dict[str, float]) -> None:
        for sink in self.sinks:
            sink.log(step, values)

    def log_samples(self, step: int, records: list[dict[str, object]]) -> None:
        for sink in self.sinks:
            sink.log_samples(step, records)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


class TensorBoardSink:
    """Scalars and sample tables as TensorBoard event files (view with `tensorboard --logdir RUN_DIR`)."""

    def __init__(self, log_dir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

        self.log_dir = log_dir
        self._writer = SummaryWriter(log_dir=str(log_dir))

    def log(self, step: int, values: dict[str, float]) -> None:
        for key, value in values.items():
            if math.isfinite(value):
                self._writer.add_scalar(key, value, step)
        self._writer.flush()

    def log_samples(self, step: int, records: list[dict[str, object]]) -> None:
        self._writer.add_text("samples", markdown_table(records), step)

    def close(self) -> None:
        self._writer.close()


class WandbSink:
    """Scalars and sample tables in a Weights & Biases run (`mode="offline"` writes locally only)."""

    def __init__(self, project: str, name: str, directory: Path, mode: str, config: dict[str, object]) -> None:
        try:
            import wandb
        except ImportError:
            raise UserError("log.wandb: the wandb package is not installed (pip install wandb)") from None
        self._wandb = wandb
        self._run = wandb.init(project=project, name=name, dir=str(directory), mode=mode, config=config,
                               reinit="create_new")

    def log(self, step: int, values: dict[str, float]) -> None:
        self._run.log({key: value for key, value in values.items() if math.isfinite(value)}, step=step)

    def log_samples(self, step: int, records: list[dict[str, object]]) -> None:
        columns = [c for c in TABLE_COLUMNS if any(c in r for r in records)]
        table = self._wandb.Table(columns=columns, data=[[r.get(c) for c in columns] for r in records])
        self._run.log({"samples": table}, step=step)

    def close(self) -> None:
        self._run.finish()
