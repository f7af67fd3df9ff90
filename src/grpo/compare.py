"""`grpo compare`: GRPO, PPO, DPO and a supervised baseline from the same base, over several seeds.

Each arm runs once per seed in its own child process (`python -m grpo.compare --child ...`), so its
peak resident memory (getrusage's ru_maxrss) is its own. Arms:

    grpo, ppo, dpo   `grpo train algorithm=...` with the shared keys
    sft              the supervised baseline: the same base trained further on the only labels its
                     own warm start had (the careless teacher of `grpo sft`), for the same training
                     wall time as the GRPO arm of that seed (or the mean of the arms before it)

An override goes only to the arms it applies to: `algo.*` and `rollout.*` to the RL arms that read
the key (`grpo.config.applicability`: PPO reads no group-advantage key, DPO only
`algo.ref_refresh_every`), `ppo.*` to PPO, `dpo.*` to DPO, `sft.*` to the supervised arm (as its
`grpo sft` keys); everything else (model, task, seed, optim, log) to all.
The parent validates every configuration first, then reads each child's metrics.jsonl and writes:

    compare.json   every seed's numbers and curves
    compare.md     per arm: each seed's value, the mean and its 95% t-interval, of final and best
                   held-out accuracy overall and per slice; median step time; peak memory
    compare.png    mean accuracy over steps and over training wall time, with a band of one
                   t-interval (matplotlib)
"""

from __future__ import annotations

import json
import math
import resource
import statistics
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from grpo.errors import UserError

DEFAULT_METHODS = ("grpo", "ppo", "dpo", "sft")
RL_ARMS = ("grpo", "ppo", "dpo")
# The comparison's own budget (before the user's overrides): short enough for a 2-core CPU in minutes.
# Each arm is its plain method: GRPO without the default run's dynamic sampling (DAPO's, which PPO and
# DPO cannot use), so every arm samples one batch of prompts per step.
COMPARE_DEFAULTS = ("optim.steps=60", "log.eval_every=10", "algo.dynamic_sampling=false")
SECTION_ARMS = {"algo": RL_ARMS, "rollout": RL_ARMS, "ppo": ("ppo",), "dpo": ("dpo",), "sft": ("sft",),
                "algorithm": ()}
# Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom (normal beyond).
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t_interval(values: list[float]) -> tuple[float, float]:
    """(mean, half-width of the 95% t-interval) of `values`; the half-width is 0 for a single value."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, 0.0
    df = len(values) - 1
    quantile = T975[df - 1] if df <= len(T975) else 1.960
    return mean, quantile * statistics.stdev(values) / math.sqrt(len(values))


def arm_overrides(arm: str, overrides: list[str]) -> list[str]:
    """The overrides that apply to `arm` (see the module docstring)."""
    from grpo.config.applicability import applicable_overrides

    kept = []
    for override in overrides:
        section = override.split("=", 1)[0].split(".", 1)[0]
        if arm in SECTION_ARMS.get(section, DEFAULT_METHODS):
            kept.append(override)
    return applicable_overrides(arm, kept) if arm in RL_ARMS else kept


@dataclass(frozen=True)
class SeedRun:
    """One arm, one seed: final and best accuracy overall (`eval_accuracy`) and per slice (`eval/<name>`)."""

    method: str
    seed: int
    final: dict[str, float]
    best: dict[str, float]
    base: dict[str, float]
    median_step_seconds: float
    train_seconds: float
    peak_rss_mib: float
    curve: list[dict[str, float]]  # {"step", "wall_seconds", "eval_accuracy"} at every evaluation


def _child(argv: list[str]) -> int:
    """In the child: train one arm, then record this process's peak memory next to its metrics."""
    from rich.console import Console

    from grpo.config import load_config

    arm, seconds, config_path, overrides = argv[0], float(argv[1]), (Path(argv[2]) if argv[2] else None), argv[3:]
    run_overrides = [o for o in overrides if not o.startswith("sft.")]
    config = load_config(config_path, run_overrides)
    run_dir = Path(config.log.output_dir) / str(config.log.run_name)
    if arm == "sft":
        _supervised_child(config, [o.removeprefix("sft.") for o in overrides if o.startswith("sft.")], seconds,
                          run_dir)
    else:
        from grpo.trainers.train import train

        train(config, console=Console(stderr=True))
    record = {"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # Linux: KiB
    (run_dir / "result.json").write_text(json.dumps(record))
    return 0


def _supervised_child(config: object, sft_overrides: list[str], seconds: float, run_dir: Path) -> None:
    """The supervised arm: `grpo sft` keys plus the run's seed, for `seconds` of training time."""
    from grpo.config.load import apply_override, validate_section
    from grpo.config.schema import SFTConfig
    from grpo.run.metrics import JsonlSink
    from grpo.tasks.api import held_out_slices
    from grpo.tasks.registry import build_task_setup
    from grpo.trainers.evaluate import HeldOutEvaluator
    from grpo.trainers.sft import supervised_baseline

    data: dict = {"seed": config.seed}
    for override in sft_overrides:
        apply_override(data, override)
    sft = validate_section(SFTConfig, data)
    setup = build_task_setup(config.task)
    examples, slices = setup.task.test_examples(), held_out_slices(setup.task, config.task.slice_size)

    def evaluate(model: object, tokenizer: object, full: bool) -> dict[str, float]:
        return HeldOutEvaluator(model, tokenizer, examples, slices, config.rollout.max_new_tokens, setup.check,
                                config.log.eval_slice_size)(full)

    run_dir.mkdir(parents=True)
    sink = JsonlSink(run_dir / "metrics.jsonl")
    (run_dir / "sft.json").write_text(sft.model_dump_json())
    supervised_baseline(sft, config.model.path, evaluate, seconds, config.log.eval_every, sink.log)
    sink.close()


def _read_run(method: str, seed: int, run_dir: Path) -> SeedRun:
    """One finished child run, from its metrics.jsonl and result.json."""
    record = json.loads((run_dir / "result.json").read_text())
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    wall, curve, step_times, best = 0.0, [], [], {}
    evaluated = [row for row in rows if "eval_accuracy" in row]
    for row in rows:
        if row.get("step_time") is not None:
            wall += row["step_time"]
            step_times.append(row["step_time"])
        if "eval_accuracy" in row:
            curve.append({"step": row["step"], "wall_seconds": wall, "eval_accuracy": row["eval_accuracy"]})
            for key, value in row.items():
                if key == "eval_accuracy" or key.startswith("eval/"):
                    best[key] = max(best.get(key, value), value)
    pick = lambda row: {k: v for k, v in row.items() if k == "eval_accuracy" or k.startswith("eval/")}
    return SeedRun(method, seed, pick(evaluated[-1]), best, pick(evaluated[0]),
                   statistics.median(step_times) if step_times else 0.0, wall, record["peak_rss_mib"], curve)


def _cell(values: list[float], digits: int = 3) -> str:
    mean, half = t_interval(values)
    seeds = " ".join(f"{v:.{digits}f}" for v in values)
    return f"{mean:.{digits}f} ± {half:.{digits}f} ({seeds})"


def markdown_table(results: list[SeedRun]) -> str:
    """Per arm: each seed's value, then mean ± 95% t-interval half-width, for every figure."""
    arms = list(dict.fromkeys(r.method for r in results))
    keys = list(dict.fromkeys(k for r in results for k in r.final))
    lines = ["| arm | figure | mean ± 95% CI (per seed) |", "|---|---|---|"]
    for arm in arms:
        runs = [r for r in results if r.method == arm]
        lines.append(f"| {arm} | base, overall | {_cell([r.base['eval_accuracy'] for r in runs])} |")
        for key in keys:
            name = "overall" if key == "eval_accuracy" else key.removeprefix("eval/")
            if all(key in r.final for r in runs):
                lines.append(f"| {arm} | final, {name} | {_cell([r.final[key] for r in runs])} |")
                lines.append(f"| {arm} | best, {name} | {_cell([r.best[key] for r in runs])} |")
        lines.append(f"| {arm} | median step (s) | {_cell([r.median_step_seconds for r in runs], 2)} |")
        lines.append(f"| {arm} | train time (s) | {_cell([r.train_seconds for r in runs], 0)} |")
        lines.append(f"| {arm} | peak RSS (MiB) | {_cell([r.peak_rss_mib for r in runs], 0)} |")
    return "\n".join(lines) + "\n"


def _mean_curve(runs: list[SeedRun], axis: str) -> tuple[list[float], list[float], list[float]]:
    """x (mean over seeds), mean accuracy and t-interval half-width at each evaluation index."""
    length = min(len(r.curve) for r in runs)
    xs, means, halves = [], [], []
    for index in range(length):
        xs.append(statistics.fmean(r.curve[index][axis] for r in runs))
        mean, half = t_interval([r.curve[index]["eval_accuracy"] for r in runs])
        means.append(mean)
        halves.append(half)
    return xs, means, halves


def plot(results: list[SeedRun], path: Path) -> None:
    """Mean accuracy over steps and over wall time, each with its 95% t-interval band, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for arm in dict.fromkeys(r.method for r in results):
        runs = [r for r in results if r.method == arm]
        for axis, key in zip(axes, ("step", "wall_seconds")):
            xs, means, halves = _mean_curve(runs, key)
            line, = axis.plot(xs, means, marker="o", markersize=3, label=f"{arm} (n={len(runs)})")
            axis.fill_between(xs, [m - h for m, h in zip(means, halves)], [m + h for m, h in zip(means, halves)],
                              color=line.get_color(), alpha=0.2)
    axes[0].set(xlabel="training step", ylabel="held-out greedy accuracy", title="mean accuracy over steps (95% CI)")
    axes[1].set(xlabel="training wall time (s, evaluation excluded)", title="mean accuracy over wall time")
    for axis in axes:
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _validate(config_path: Path | None, shared: list[str], methods: tuple[str, ...], seeds: int) -> None:
    from grpo.config import load_config
    from grpo.config.load import apply_override, validate_section
    from grpo.config.schema import SFTConfig

    unknown = [m for m in methods if m not in DEFAULT_METHODS]
    if unknown or not methods:
        raise UserError(f"--methods: unknown arm {unknown[0] if unknown else '(none)'!r}; "
                        f"choose from {', '.join(DEFAULT_METHODS)}")
    if seeds < 1:
        raise UserError(f"--seeds must be >= 1 (got {seeds})")
    for method in methods:  # every configuration is checked before anything runs or is written
        overrides = arm_overrides(method, shared)
        load_config(config_path, [o for o in overrides if not o.startswith("sft.")] +
                    ([f"algorithm={method}"] if method in RL_ARMS else []))
        data: dict = {}
        for override in (o.removeprefix("sft.") for o in overrides if o.startswith("sft.")):
            apply_override(data, override)
        validate_section(SFTConfig, data)


def run_compare(output: Path, config_path: Path | None, overrides: list[str],
                methods: tuple[str, ...] = DEFAULT_METHODS, seeds: int = 1) -> list[SeedRun]:
    """Run every arm for seeds 0..seeds-1 in child processes; write compare.{json,md,png}."""
    from grpo.config import load_config

    base_seed = load_config(config_path, [o for o in overrides if o.split("=")[0] == "seed"]).seed
    shared = [*COMPARE_DEFAULTS, *overrides, "log.progress=false"]
    _validate(config_path, shared, methods, seeds)
    output.mkdir(parents=True, exist_ok=True)
    results: list[SeedRun] = []
    for seed in range(base_seed, base_seed + seeds):
        done: list[SeedRun] = []
        for method in methods:
            name = f"{method}-seed{seed}"
            budget = statistics.fmean(r.train_seconds for r in done if r.method != "sft") if done else 0.0
            if method == "sft" and budget == 0.0:
                raise UserError("--methods: the sft arm takes its wall-clock budget from an RL arm listed before it")
            argv = [sys.executable, "-m", "grpo.compare", "--child", method, str(budget), str(config_path or ""),
                    *arm_overrides(method, shared), *([f"algorithm={method}"] if method in RL_ARMS else []),
                    f"seed={seed}", f"log.output_dir={output / 'runs'}", f"log.run_name={name}"]
            print(f"compare: training {method}, seed {seed} ...", flush=True)
            finished = subprocess.run(argv)
            if finished.returncode != 0:
                raise UserError(f"the {method} run (seed {seed}) failed with exit code {finished.returncode}")
            done.append(_read_run(method, seed, output / "runs" / name))
        results += done
    (output / "compare.json").write_text(json.dumps([asdict(r) for r in results], indent=2))
    (output / "compare.md").write_text(markdown_table(results))
    plot(results, output / "compare.png")
    return results


if __name__ == "__main__":
    if sys.argv[1:2] != ["--child"]:
        sys.exit("usage: python -m grpo.compare --child ARM SECONDS CONFIG_OR_EMPTY [key=value ...] (use grpo compare)")
    sys.exit(_child(sys.argv[2:]))
