"""The run directory: created only once the config is valid and the model has loaded."""

from __future__ import annotations

import time
from pathlib import Path

from grpo.config import RunConfig, dump_config
from grpo.errors import UserError
from grpo.run.quiet import attach_run_dir

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
SAMPLES_FILE = "samples.jsonl"
FINAL_CHECKPOINT = "final"
ADAPTER_CHECKPOINT = "adapter"  # LoRA runs: the adapter alone, beside the merged final model


def create_run_dir(config: RunConfig) -> Path:
    """Make `output_dir/run_name` (a timestamp by default) and write the resolved config into it."""
    name = config.log.run_name or time.strftime("%Y%m%d-%H%M%S")
    path = Path(config.log.output_dir) / name
    if path.exists() and any(path.iterdir()):
        raise UserError(f"log.run_name: run directory {path} already exists; choose another name")
    path.mkdir(parents=True, exist_ok=True)
    (path / CONFIG_FILE).write_text(dump_config(config))
    attach_run_dir(path)
    return path
