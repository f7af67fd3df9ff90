"""`grpo compare`: GRPO, PPO and DPO from the same base, prompt budget and seed, side by side.

Each method runs in its own child process (`python -m grpo.compare --child ...`), so its peak
resident memory (getrusage's ru_maxrss) is its own. The parent validates the configuration first,
then reads every child's metrics.jsonl and result.json and writes:

    compare.json   every number below, plus the accuracy curves
    compare.md     the table: base / final / best held-out accuracy, median step time, training time,
                   peak memory and the number of full networks the method holds
    compare.png    held-out accuracy over steps and over training wall time (needs matplotlib)

Wall time is the sum of step times (sampling, scoring and updates), so evaluation is not counted.
Only `algorithm` differs between the runs; every other key (steps, prompts per step, group size,
seed, learning rate) is the same for all methods, whatever the user overrides.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from grpo.errors import UserError

DEFAULT_METHODS = ("grpo", "ppo", "dpo")
# The comparison's own budget (before the user's overrides): short enough for a 2-core CPU in minutes.
COMPARE_DEFAULTS = ("optim.steps=60", "log.eval_every=5")


@dataclass(frozen=True)
class MethodResult:
    """One method's row of the table and its accuracy curve."""

    method: str
    base_accuracy: float
    final_accuracy: float
    best_accuracy: float
    median_step_seconds: float
    train_seconds: float
    peak_rss_mib: float
    models_held: int
    curve: list[dict[str, float]]  # {"step", "wall_seconds", "eval_accuracy"} at every evaluation


def _child(argv: list[str]) -> int:
    """In the child: train one method, then record the result and this process's peak memory."""
    from rich.console import Console

    from grpo.config import load_config
    from grpo.trainers.train import train

    config_path, overrides = (Path(argv[0]) if argv[0] else None), argv[1:]
    config = load_config(config_path, overrides)
    result = train(config, console=Console(stderr=True))
    run_dir = Path(config.log.output_dir) / str(config.log.run_name)
    record = {"base_accuracy": result.base_accuracy, "final_accuracy": result.final_accuracy,
              "train_seconds": result.train_seconds, "models_held": result.models_held,
              "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # Linux: KiB
    (run_dir / "result.json").write_text(json.dumps(record))
    return 0


def _read_run(method: str, run_dir: Path) -> MethodResult:
    """The table row of one finished child run, from its metrics.jsonl and result.json."""
    record = json.loads((run_dir / "result.json").read_text())
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    wall, curve, step_times = 0.0, [], []
    for row in rows:
        if row.get("step_time") is not None:
            wall += row["step_time"]
            step_times.append(row["step_time"])
        if row.get("eval_accuracy") is not None:
            curve.append({"step": row["step"], "wall_seconds": wall, "eval_accuracy": row["eval_accuracy"]})
    return MethodResult(
        method=method, base_accuracy=record["base_accuracy"], final_accuracy=record["final_accuracy"],
        best_accuracy=max(point["eval_accuracy"] for point in curve),
        median_step_seconds=statistics.median(step_times) if step_times else 0.0, train_seconds=wall,
        peak_rss_mib=record["peak_rss_mib"], models_held=record["models_held"], curve=curve,
    )


def markdown_table(results: list[MethodResult]) -> str:
    """The comparison as a markdown table, one row per method."""
    lines = [
        "| method | base acc | final acc | best acc | median step (s) | train time (s) | peak RSS (MiB) "
        "| models held |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(f"| {r.method} | {r.base_accuracy:.3f} | {r.final_accuracy:.3f} | {r.best_accuracy:.3f} | "
                     f"{r.median_step_seconds:.2f} | {r.train_seconds:.0f} | {r.peak_rss_mib:.0f} | {r.models_held} |")
    return "\n".join(lines) + "\n"


def plot(results: list[MethodResult], path: Path) -> bool:
    """Accuracy over steps and over wall time as a PNG; False when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, (by_step, by_time) = plt.subplots(1, 2, figsize=(11, 4))
    for r in results:
        steps = [p["step"] for p in r.curve]
        accuracy = [p["eval_accuracy"] for p in r.curve]
        by_step.plot(steps, accuracy, marker="o", label=r.method)
        by_time.plot([p["wall_seconds"] for p in r.curve], accuracy, marker="o", label=r.method)
    by_step.set(xlabel="training step", ylabel="held-out greedy accuracy", title="accuracy over steps")
    by_time.set(xlabel="training wall time (s, evaluation excluded)", title="accuracy over wall time")
    for axis in (by_step, by_time):
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def run_compare(
    output: Path, config_path: Path | None, overrides: list[str], methods: tuple[str, ...] = DEFAULT_METHODS
) -> list[MethodResult]:
    """Run every method in a child process with identical settings; write compare.{json,md,png}."""
    from grpo.config import load_config
    from grpo.config.applicability import applicable_overrides

    shared = [*COMPARE_DEFAULTS, f"log.output_dir={output / 'runs'}", "log.progress=false"]
    arms = {method: [*shared, *applicable_overrides(method, overrides), f"algorithm={method}",
                     f"log.run_name={method}"] for method in methods}  # each override only where it applies
    for method in methods:  # validate every configuration before anything runs or is written
        load_config(config_path, arms[method])
    output.mkdir(parents=True, exist_ok=True)
    results = []
    for method in methods:
        argv = [sys.executable, "-m", "grpo.compare", "--child", str(config_path or ""), *arms[method]]
        print(f"compare: training {method} ...", flush=True)
        done = subprocess.run(argv)
        if done.returncode != 0:
            raise UserError(f"the {method} run failed with exit code {done.returncode} (see its output above)")
        results.append(_read_run(method, output / "runs" / method))
    (output / "compare.json").write_text(json.dumps([asdict(r) for r in results], indent=2))
    (output / "compare.md").write_text(markdown_table(results))
    if not plot(results, output / "compare.png"):
        print("compare: matplotlib is not installed, so no plot (pip install matplotlib)", flush=True)
    return results


if __name__ == "__main__":
    if sys.argv[1:2] != ["--child"]:
        sys.exit("usage: python -m grpo.compare --child CONFIG_OR_EMPTY [key=value ...] (use `grpo compare`)")
    sys.exit(_child(sys.argv[2:]))
