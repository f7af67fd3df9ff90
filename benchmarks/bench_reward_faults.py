"""Median step time of 20-step runs whose reward function misbehaves on one call in ten, beside a clean run.

    python benchmarks/bench_reward_faults.py [--steps 20] [--prompts 8] [--timeout 3]

Each fault (hang, spin, os._exit, segfault, unbounded memory) runs in a reward worker process
(guards.reward_processes=true, the default); prints one JSON line per run and a summary line with
each faulty median over the clean one. The default policy (builtin:arith-warmstart) is used.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console

from grpo.config import load_config
from grpo.rewards.faults import FAULTS, write_fault_module
from grpo.trainers.train import train


def one_run(kind: str, root: Path, args: argparse.Namespace) -> dict:
    name = write_fault_module(root, kind, every=10)
    out = root / f"runs-{kind}"
    config = load_config(None, [f"log.output_dir={out}", "log.run_name=r", f"optim.steps={args.steps}",
                                f"rollout.prompts_per_step={args.prompts}", "log.eval_every=0", "task.test_size=8",
                                "log.progress=false", "log.report=false", "log.tensorboard=false",
                                "checkpoint.every=0", f"guards.reward_timeout={args.timeout}",
                                f"rewards=[{{function: '{name}:reward'}}]"])
    start = time.monotonic()
    train(config, console=Console(file=io.StringIO()))
    rows = [json.loads(line) for line in (out / "r" / "metrics.jsonl").read_text().splitlines()]
    times = [row["step_time"] for row in rows if "step_time" in row and row.get("step", 0) > 0]
    fallbacks = sum(row.get("reward_fallback/reward", 0.0) for row in rows)
    return {"run": kind, "median_step_s": round(statistics.median(times), 3), "max_step_s": round(max(times), 3),
            "total_s": round(time.monotonic() - start, 1), "fallback_samples": fallbacks,
            "loadavg": [round(x, 2) for x in os.getloadavg()]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steady figures on a loaded machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    root = Path(tempfile.mkdtemp(prefix="grpo-reward-faults-"))
    sys.path.insert(0, str(root))
    results = {}
    for kind in ("clean", *FAULTS):
        results[kind] = one_run(kind, root, args)
        print(json.dumps(results[kind]), flush=True)
    clean = results["clean"]["median_step_s"]
    print(json.dumps({"summary": {kind: round(r["median_step_s"] / clean, 3) for kind, r in results.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
