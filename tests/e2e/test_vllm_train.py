"""`grpo train rollout.backend=vllm` end to end; without vllm, one line naming the package and exit 2."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from grpo.cli import main

SMALL_RUN = ["optim.steps=3", "rollout.prompts_per_step=4", "rollout.group_size=4", "rollout.max_new_tokens=12",
             "task.test_size=8", "log.eval_every=0", "log.progress=false", "log.report=false",
             "log.tensorboard=false"]


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed in this venv")
def test_backend_vllm_without_vllm_is_one_line_exit_2(tmp_path: Path, capsys):
    code = main(["train", "rollout.backend=vllm", f"log.output_dir={tmp_path / 'runs'}"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "rollout.backend=vllm needs the vllm package: pip install 'grpo[vllm]'" in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.vllm
def test_train_with_vllm_syncs_and_checks_every_step(tmp_path: Path):
    # The built-in model: vLLM's CPU attention has no kernel for the test model's head_dim of 16.
    code = main(["train", f"log.output_dir={tmp_path}", "log.run_name=v",
                 "rollout.backend=vllm", "rollout.vllm.kv_cache_memory_gb=0.25", "optim.lr=1e-2", *SMALL_RUN])
    assert code == 0
    rows = [json.loads(line) for line in (tmp_path / "v" / "metrics.jsonl").read_text().splitlines()]
    steps = [row for row in rows if "reward_mean" in row]
    assert len(steps) == 3
    for row in steps:  # each step synced the previous update into vLLM and the copy passed the check
        assert row["sync_kl_k3"] < 1e-6 and row["sync_logprob_gap_max"] < 1e-4
        assert abs(row["sampler_kl_k3"]) < 1e-6 and row["is_masked_share"] == 0.0
        assert 0 < row["generation_time"] < row["step_time"]  # sync and check included, timed apart


@pytest.mark.vllm
@pytest.mark.slow
def test_two_ranks_each_with_a_colocated_engine(tmp_path: Path, torchrun):
    torchrun.run("-m", "grpo", "train", f"log.output_dir={tmp_path}", "log.run_name=ddp", "rollout.backend=vllm",
                 "rollout.vllm.kv_cache_memory_gb=0.25", *SMALL_RUN)
    rows = [json.loads(line) for line in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [0, 1, 2, 3]
    assert all(row["sync_kl_k3"] < 1e-6 for row in rows if "reward_mean" in row)
