"""benchmarks/gpu_vllm_step.py, the prepared GPU check, run end to end at CPU scale (built-in engine only)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_vllm_step.py"


def test_the_gpu_check_runs_grpo_train_and_reports_the_logged_step():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--shape", "tiny", "--device", "cpu", "--dtype", "float32",
                           "--prompts", "2", "--group-size", "2", "--max-new-tokens", "6", "--steps", "3",
                           "--backends", "engine"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads(proc.stdout.strip().splitlines()[-1])
    engine = record["engine"]
    assert engine["steps_timed"] == 2  # the first step is left out
    assert 0 < engine["generation_time"] < engine["step_time"] and engine["generation_tokens_per_s"] > 0
    assert 0 < engine["completion_length"] <= 6
