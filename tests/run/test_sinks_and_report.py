"""TensorBoard and W&B sinks, and the self-contained HTML report."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from grpo.cli import main
from grpo.errors import UserError
from grpo.run.report import extremes, render_report, write_report
from grpo.run.sinks import FanOutSink, TensorBoardSink, markdown_table

SAMPLES = [
    {"step": 1, "prompt": "1+2*3=", "completion": "1+6=7", "reward": 1.0, "advantage": 0.9},
    {"step": 1, "prompt": "1+2*3=", "completion": "3*3=9", "reward": 0.0, "advantage": -0.9},
    {"step": 2, "prompt": "<b>x</b>|", "completion": "a\nb", "reward": 0.5, "advantage": 0.0},
]


def fake_run(run_dir: Path, steps: int = 6) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    rows = [{"step": 0, "eval_accuracy": 0.3}]
    for step in range(1, steps + 1):
        rows.append({"step": step, "reward_mean": step / steps, "reward/exact_answer": step / steps, "kl": 0.01 * step,
                     "clip_fraction": 0.0, "entropy": 1.0 - 0.1 * step, "completion_length": 10.0 + step,
                     "step_time": 0.5, "generation_time": 0.2})
    rows[-1]["eval_accuracy"] = 0.8
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (run_dir / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in SAMPLES))
    (run_dir / "config.yaml").write_text("seed: 0\n")
    return run_dir


def test_tensorboard_event_files_hold_the_scalars_and_the_sample_table(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    sink = FanOutSink([TensorBoardSink(tmp_path / "tb")])
    for step in (1, 2, 3):
        sink.log(step, {"reward_mean": step / 10, "kl": float("nan")})  # NaN is skipped, not plotted
    sink.log_samples(3, SAMPLES)
    sink.close()
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"tensors": 0}).Reload()
    assert [e.value for e in events.Scalars("reward_mean")] == pytest.approx([0.1, 0.2, 0.3])
    assert "kl" not in events.Tags()["scalars"]
    assert "samples/text_summary" in events.Tags()["tensors"]


def test_markdown_table_escapes_pipes_and_newlines():
    table = markdown_table(SAMPLES[2:])
    assert table.splitlines()[0] == "| prompt | completion | reward | advantage |"
    assert "<b>x</b>\\|" in table and "a ⏎ b" in table


def test_wandb_offline_run(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    from grpo.run.sinks import WandbSink

    monkeypatch.setenv("WANDB_SILENT", "true")
    sink = WandbSink("grpo-test", "offline-run", tmp_path, "offline", {"seed": 0})
    sink.log(1, {"reward_mean": 0.5, "kl": float("inf")})
    sink.log_samples(1, SAMPLES)
    sink.close()
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))


def test_report_embeds_every_plot_and_the_best_and_worst_samples(tmp_path):
    run_dir = fake_run(tmp_path / "run")
    page = render_report(run_dir)
    images = page.split('src="data:image/png;base64,')[1:]
    assert len(images) == 6  # reward, accuracy, KL, clip fraction, entropy, completion length
    assert base64.b64decode(images[0].split('"')[0])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "0.300 → 0.800" in page  # held-out accuracy before and after
    assert "of which generating" in page and "1 s (40%)" in page  # 6 x 0.2 s of 6 x 0.5 s
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page  # completions are escaped
    assert "http" not in page.replace("http-equiv", "")  # self-contained: nothing fetched
    best, worst = extremes(SAMPLES, count=1)
    assert best[0]["completion"] == "1+6=7" and worst[0]["completion"] == "3*3=9"


def test_report_notes_metrics_a_run_did_not_log(tmp_path):
    run_dir = fake_run(tmp_path / "run")
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps({k: v for k, v in r.items() if k != "kl"}) + "\n"
                                                   for r in rows))
    assert "Not logged in this run: KL to the reference." in render_report(run_dir)


def test_grpo_report_command(tmp_path, capsys):
    run_dir = fake_run(tmp_path / "run")
    assert main(["report", str(run_dir)]) == 0
    assert (run_dir / "report.html").is_file()
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "grpo report: error: report:" in capsys.readouterr().err
    with pytest.raises(UserError, match="metrics.jsonl is missing or empty"):
        write_report(tmp_path)
