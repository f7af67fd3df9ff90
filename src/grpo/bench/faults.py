"""`grpo bench faults`: the median step time of runs whose reward misbehaves, beside clean runs.

Each fault of `grpo.rewards.faults` (hang, spin, os._exit, segfault, unbounded memory) strikes one
reward call in ten of a `grpo train` run on the default policy; the run's reward workers
(guards.reward_processes, on by default) must contain it. Runs alternate clean, fault, clean, ...
in every round, with the order rotated between rounds, so the clean medians share the machine's
state with the faulty ones. The step time is `step_time` from each run's metrics.jsonl, the whole
step that `grpo train` logs. Figures go to docs/performance.md, never into a test's assertion.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path


def _one_run(kind: str, root: Path, run_name: str, args: argparse.Namespace) -> dict:
    """Train `args.steps` steps with the reward of fault `kind`; its median step, slowest step and fallbacks."""
    from rich.console import Console

    from grpo.config import load_config
    from grpo.rewards.faults import write_fault_module
    from grpo.trainers.train import train

    name = write_fault_module(root, kind, every=args.every)
    out = root / "runs"
    config = load_config(None, [f"log.output_dir={out}", f"log.run_name={run_name}", f"optim.steps={args.steps}",
                                f"rollout.prompts_per_step={args.prompts}", "log.eval_every=0", "task.test_size=8",
                                "log.progress=false", "log.report=false", "log.tensorboard=false",
                                "checkpoint.every=0", f"guards.reward_timeout={args.timeout}",
                                "algo.dynamic_sampling=false",  # one reward call per step: faults land on steps
                                f"rewards=[{{function: '{name}:reward'}}]"])
    train(config, console=Console(file=io.StringIO()))
    rows = [json.loads(line) for line in (out / run_name / "metrics.jsonl").read_text().splitlines()]
    times = [row["step_time"] for row in rows if "step_time" in row]
    return {"median_step_s": statistics.median(times), "max_step_s": max(times), "steps": len(times),
            "fallback_samples": int(sum(row.get("reward_fallback/reward", 0.0) for row in rows))}


def _order(kinds: list[str], round_index: int) -> list[str]:
    """Clean before each fault, the faults rotated by round: clean, f1, clean, f2, ..."""
    shift = round_index % len(kinds)
    rotated = kinds[shift:] + kinds[:shift]
    return [run for kind in rotated for run in ("clean", kind)]


def main(args: argparse.Namespace) -> int:
    """Print one JSON line: per run kind, the median of its runs' median steps and its ratio to clean."""
    import torch

    from grpo.bench.common import emit, machine
    from grpo.bench.options import threads
    from grpo.rewards.faults import FAULTS

    torch.set_num_threads(threads(args))
    record: dict[str, object] = {"benchmark": "faults", "steps": args.steps, "prompts": args.prompts,
                                 "every": args.every, "reward_timeout_s": args.timeout, "rounds": args.rounds,
                                 "machine": machine()}
    root = Path(tempfile.mkdtemp(prefix="grpo-bench-faults-"))
    sys.path.insert(0, str(root))
    runs: dict[str, list[dict]] = {}
    try:
        for round_index in range(args.rounds):
            for index, kind in enumerate(_order(list(args.faults or FAULTS), round_index)):
                result = _one_run(kind, root, f"r{round_index}-{index}-{kind}", args)
                runs.setdefault(kind, []).append(result)
    finally:
        sys.path.remove(str(root))
        shutil.rmtree(root, ignore_errors=True)
    medians = {kind: statistics.median(r["median_step_s"] for r in results) for kind, results in runs.items()}
    record["runs"] = {kind: {"median_step_s": round(medians[kind], 3),
                             "max_step_s": round(max(r["max_step_s"] for r in results), 3),
                             "fallback_samples_per_run": sorted({r["fallback_samples"] for r in results}),
                             "steps_per_run": sorted({r["steps"] for r in results}),
                             "ratio_vs_clean": round(medians[kind] / medians["clean"], 3)}
                      for kind, results in runs.items()}
    emit(record)
    return 0
