"""Two processes under torchrun (gloo on CPU): every rank trains, only rank 0 writes the run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_two_ranks_train_and_only_rank_zero_writes(tiny_model_dir: Path, tmp_path: Path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29531",
               "-m", "grpo", "train", f"model.path={tiny_model_dir}", f"log.output_dir={tmp_path}",
               "log.run_name=ddp", "optim.steps=2", "rollout.prompts_per_step=2", "rollout.group_size=2",
               "rollout.max_new_tokens=6", "task.test_size=4", "log.eval_every=0", "log.progress=false",
               "log.report=false", "log.tensorboard=false"]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [p.name for p in tmp_path.iterdir()] == ["ddp"]
    rows = [json.loads(line) for line in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [0, 1, 2]  # one row per step, not one per rank
    assert proc.stdout.count("held-out greedy accuracy") == 1  # printed by rank 0 only
