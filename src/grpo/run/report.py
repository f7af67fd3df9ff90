"""The run report: one self-contained HTML file with plots and the best and worst completions.

Everything is read back from the run directory (metrics.jsonl, samples.jsonl, config.yaml), so the
report can be rebuilt at any time with `grpo report RUN_DIR`. Plots are PNG images embedded as
base64 data, so the file opens anywhere, offline, with nothing beside it.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path

from grpo.errors import UserError
from grpo.run.run_dir import CONFIG_FILE, METRICS_FILE, SAMPLES_FILE

SLICE_PREFIX = "eval/"  # metric keys of held-out slices (grpo.trainers.evaluate writes them)

REPORT_FILE = "report.html"
SHOWN_SAMPLES = 5  # best and worst completions listed each
PLOTS = (  # (title, metric keys drawn on the panel)
    ("Reward (mean over completions)", ("reward_mean",)),
    ("Held-out greedy accuracy", ("eval_accuracy",)),
    ("KL to the reference", ("kl",)),
    ("Clip fraction", ("clip_fraction",)),
    ("Entropy (nats per token)", ("entropy",)),
    ("Completion length (tokens)", ("completion_length",)),
)
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
.plots { display: grid; grid-template-columns: repeat(2, 1fr); gap: 12px; }
.plots img { width: 100%; border: 1px solid #ddd; }
table { border-collapse: collapse; width: 100%; font-size: 0.9em; }
td, th { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
pre { white-space: pre-wrap; word-break: break-word; margin: 0; font-size: 0.85em; }
"""


def read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def series(rows: list[dict], key: str) -> tuple[list[int], list[float]]:
    """Steps and finite values of one metric."""
    points = [(row["step"], row[key]) for row in rows if isinstance(row.get(key), (int, float))]
    points = [(step, value) for step, value in points if math.isfinite(value)]
    return [p[0] for p in points], [p[1] for p in points]


def plot_png(title: str, rows: list[dict], keys: tuple[str, ...]) -> str | None:
    """A base64 PNG of the metrics `keys` over steps, or None when none of them was logged."""
    import matplotlib

    matplotlib.use("Agg")  # no display: render to memory
    import matplotlib.pyplot as plt

    lines = [(key, *series(rows, key)) for key in keys]
    lines = [line for line in lines if line[1]]
    if not lines:
        return None
    figure, axes = plt.subplots(figsize=(5.4, 3.2), dpi=100)
    for index, (key, steps, values) in enumerate(lines):
        style = {"color": "black", "linewidth": 2.0, "zorder": 3} if index == 0 and len(lines) > 1 else {}
        axes.plot(steps, values, marker="o" if len(steps) < 30 else None, markersize=3, label=key, **style)
    axes.set_title(title)
    axes.set_xlabel("step")
    axes.grid(alpha=0.3)
    if len(lines) > 1:
        axes.legend(fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def reward_keys(rows: list[dict]) -> tuple[str, ...]:
    """reward_mean plus each per-function reward/<name> when the run had several (one would overlap it)."""
    named = sorted({key for row in rows for key in row if key.startswith("reward/")})
    return ("reward_mean", *named) if len(named) > 1 else ("reward_mean",)


def summary(rows: list[dict]) -> list[tuple[str, str]]:
    """A few headline numbers: steps, accuracy before and after, last reward, time and its generating share."""
    _, accuracy = series(rows, "eval_accuracy")
    _, reward = series(rows, "reward_mean")
    _, times = series(rows, "step_time")
    items = [("steps", str(max((row["step"] for row in rows), default=0)))]
    if accuracy:
        items.append(("held-out accuracy", f"{accuracy[0]:.3f} → {accuracy[-1]:.3f}"))
    if reward:
        tail = reward[-max(1, len(reward) // 10):]
        items.append(("reward (first step → mean of last 10%)", f"{reward[0]:.3f} → {sum(tail) / len(tail):.3f}"))
    if times:
        items.append(("training time", f"{sum(times):.0f} s ({sum(times) / len(times):.2f} s/step)"))
    _, generating = series(rows, "generation_time")
    if times and generating:
        items.append(("of which generating", f"{sum(generating):.0f} s ({100 * sum(generating) / sum(times):.0f}%)"))
    return items


def slice_rows(rows: list[dict], points: float) -> str:
    """An HTML table of held-out accuracy per slice: the base (step 0), the last evaluation, the change,
    and a flag where the slice ended more than `points` points below the base; "" without slices."""
    evaluated = [row for row in rows if any(key.startswith(SLICE_PREFIX) for key in row)]
    if not evaluated:
        return ""
    first, last = evaluated[0], evaluated[-1]
    cells = []
    for key in [k for k in first if k.startswith(SLICE_PREFIX) and k in last]:
        change = 100 * (last[key] - first[key])
        flag = "forgetting" if -change > points else ""
        cells.append(f"<tr><td>{html.escape(key.removeprefix(SLICE_PREFIX))}</td><td>{first[key]:.3f}</td>"
                     f"<td>{last[key]:.3f}</td><td>{change:+.1f}</td><td>{flag}</td></tr>")
    head = (f"<tr><th>slice</th><th>base (step {first['step']})</th><th>final (step {last['step']})</th>"
            "<th>change (points)</th><th></th></tr>")
    return (f"<h2>Held-out accuracy per slice</h2><table>{head}{''.join(cells)}</table>"
            f"<p>Greedy accuracy on each named slice of the held-out data (<code>grpo eval</code> prints what "
            f"each holds); a slice more than {points:g} points below the base is flagged.</p>")


def extremes(samples: list[dict], count: int = SHOWN_SAMPLES) -> tuple[list[dict], list[dict]]:
    """The `count` highest- and lowest-reward distinct completions (later steps first among ties).

    A policy that has converged samples the same completion many times; each is shown once.
    """
    scored = [s for s in samples if isinstance(s.get("reward"), (int, float))]
    ordered = sorted(scored, key=lambda s: (s["reward"], s.get("step", 0)))
    distinct = list({(s.get("prompt"), s.get("completion")): s for s in ordered}.values())
    distinct.sort(key=lambda s: (s["reward"], s.get("step", 0)))
    best = list(reversed(distinct[-count:]))
    worst = [s for s in distinct[:count] if s not in best]
    return best, worst


def _sample_table(samples: list[dict]) -> str:
    if not samples:
        return "<p>No samples recorded.</p>"
    head = "<tr><th>step</th><th>reward</th><th>prompt</th><th>completion</th></tr>"
    cells = "".join(
        f"<tr><td>{s.get('step', '')}</td><td>{s['reward']:.3f}</td>"
        f"<td><details><summary>{html.escape(str(s.get('prompt', ''))[-80:])}</summary>"
        f"<pre>{html.escape(str(s.get('prompt', '')))}</pre></details></td>"
        f"<td><pre>{html.escape(str(s.get('completion', '')))}</pre></td></tr>"
        for s in samples
    )
    return f"<table>{head}{cells}</table>"


def render_report(run_dir: Path) -> str:
    """The report of `run_dir` as one HTML string."""
    from grpo.explain import explain_html

    rows = read_jsonl(run_dir / METRICS_FILE)
    if not rows:
        raise UserError(f"report: {run_dir / METRICS_FILE} is missing or empty; is {run_dir} a run directory?")
    panels = [(title, reward_keys(rows) if keys == ("reward_mean",) else keys) for title, keys in PLOTS]
    slice_keys = tuple(dict.fromkeys(k for row in rows for k in row if k.startswith(SLICE_PREFIX)))
    if slice_keys:
        panels.insert(2, ("Held-out accuracy per slice", slice_keys))
    images = [(title, plot_png(title, rows, keys)) for title, keys in panels]
    plots = "".join(f'<img alt="{html.escape(t)}" src="data:image/png;base64,{png}">' for t, png in images if png)
    missing = [t for t, png in images if png is None]
    best, worst = extremes(read_jsonl(run_dir / SAMPLES_FILE))
    config_path = run_dir / CONFIG_FILE
    config = config_path.read_text(encoding="utf-8") if config_path.is_file() else "(no config.yaml)"
    facts = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in summary(rows))
    note = f"<p>Not logged in this run: {html.escape(', '.join(missing))}.</p>" if missing else ""
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>GRPO run {html.escape(run_dir.name)}</title>"
        f"<style>{STYLE}</style></head><body><h1>GRPO run <code>{html.escape(run_dir.name)}</code></h1>"
        f"<table>{facts}</table>{slice_rows(rows, _forgetting_points(config))}"
        f"<h2>Training curves</h2><div class='plots'>{plots}</div>{note}"
        f"{explain_html(run_dir)}<h2>Best completions</h2>{_sample_table(best)}"
        f"<h2>Worst completions</h2>{_sample_table(worst)}"
        f"<h2>Configuration</h2><pre>{html.escape(config)}</pre></body></html>"
    )


def _forgetting_points(config_text: str, default: float = 3.0) -> float:
    """`log.forgetting_points` from the run's config.yaml text, or the default."""
    import yaml

    try:
        loaded = yaml.safe_load(config_text)
    except yaml.YAMLError:
        return default
    value = loaded.get("log", {}).get("forgetting_points", default) if isinstance(loaded, dict) else default
    return float(value) if isinstance(value, (int, float)) else default


def write_report(run_dir: Path) -> Path:
    """Write `RUN_DIR/report.html` (replacing an older one) and return its path."""
    if not run_dir.is_dir():
        raise UserError(f"report: {run_dir} is not a directory")
    target = run_dir / REPORT_FILE
    staging = target.with_name(f".{REPORT_FILE}.tmp")
    staging.write_text(render_report(run_dir), encoding="utf-8")
    staging.replace(target)
    return target
