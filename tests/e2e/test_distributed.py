"""Two processes under torchrun (gloo on CPU): every rank trains, only rank 0 writes the run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.mark.slow
def test_two_ranks_train_and_only_rank_zero_writes(tiny_model_dir: Path, tmp_path: Path, torchrun):
    proc = torchrun.run("-m", "grpo", "train", f"model.path={tiny_model_dir}", f"log.output_dir={tmp_path}",
                        "log.run_name=ddp", "optim.steps=2", "rollout.prompts_per_step=2", "rollout.group_size=2",
                        "rollout.max_new_tokens=6", "task.test_size=4", "task.slice_size=20", "log.eval_every=0",
                        "log.progress=false", "log.report=false", "log.tensorboard=false", timeout=300)
    assert [p.name for p in tmp_path.iterdir()] == ["ddp"]
    rows = [json.loads(line) for line in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [0, 1, 2]  # one row per step, not one per rank
    assert proc.stdout.count("held-out greedy accuracy") == 1  # printed by rank 0 only
