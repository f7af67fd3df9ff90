"""The command line: user errors are one line with exit code 2 and leave no run directory behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from grpo.cli import main


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "optim.lrr=1"], "unknown config key 'optim.lrr'; did you mean 'optim.lr'?"),
        (["train", "rollout.group_size=1"], "config key 'rollout.group_size'"),
        (["train", "algo.eps=0"], "config key 'algo.eps'"),
        (["train", "--config", "missing.yaml"], "config file not found: missing.yaml"),
        (["train", "model.path=/nonexistent/model"], "model.path: /nonexistent/model is not a model directory"),
        (["eval", "/nonexistent/model"], "model.path: /nonexistent/model is not a model directory"),
        (["sft", "stepz=3"], "unknown config key 'stepz'; did you mean 'steps'?"),
    ],
)
def test_user_errors_are_one_line_exit_2_and_write_nothing(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main([*argv, f"log.output_dir={tmp_path / 'runs'}"] if argv[0] == "train" else argv)
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_console_script_reports_errors_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "grpo", "train", "algo.eps_high=0.1"], capture_output=True,
                          text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "grpo train: error: algo.eps_high (0.1) must be >= algo.eps (0.2)"
    assert not (tmp_path / "runs").exists()


def test_train_writes_a_complete_run_directory(tiny_model_dir: Path, tmp_path: Path, capsys):
    code = main(["train", f"model.path={tiny_model_dir}", f"log.output_dir={tmp_path}", "log.run_name=r",
                 "optim.steps=3", "log.eval_every=2", "log.samples_every=2", "rollout.prompts_per_step=4",
                 "rollout.group_size=2", "rollout.max_new_tokens=6", "task.test_size=8", "log.progress=false"])
    assert code == 0
    run = tmp_path / "r"
    captured = capsys.readouterr()
    assert "held-out greedy accuracy: base" in captured.out
    # Only the project's own lines: no progress bars, deprecations or library log records.
    assert all(line.startswith("warning: ") for line in captured.err.splitlines()), captured.err
    lines = captured.out.splitlines()
    if "held-out accuracy per slice (greedy; base -> final):" in lines:  # the project's own slice table
        start = lines.index("held-out accuracy per slice (greedy; base -> final):")
        end = next(i for i, line in enumerate(lines) if line.startswith("final checkpoint"))
        lines = lines[:start] + lines[end:]
    assert all(line.startswith(("held-out", "final checkpoint", "report:", "forgetting:")) for line in lines)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [0, 1, 2, 3]
    assert "eval_accuracy" in rows[0] and "eval_accuracy" in rows[2] and "eval_accuracy" in rows[3]
    for key in ("reward_mean", "reward_std", "kl", "clip_fraction", "completion_length", "entropy", "step_time"):
        assert key in rows[1], key
    for row in rows[1:]:  # generating is part of the step
        assert 0 < row["generation_time"] < row["step_time"] and row["generation_tokens_per_s"] > 0
    samples = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    assert {s["step"] for s in samples} == {1, 2} and {"prompt", "completion", "reward"} <= set(samples[0])
    assert "group_size: 2" in (run / "config.yaml").read_text()
    AutoModelForCausalLM.from_pretrained(run / "final")
    AutoTokenizer.from_pretrained(run / "final")
    assert not [p for p in run.iterdir() if p.name.startswith(".")]  # no staging leftovers


def test_eval_reports_accuracy_of_a_model_dir(tiny_model_dir: Path, capsys):
    assert main(["eval", str(tiny_model_dir), "task.test_size=5", "rollout.max_new_tokens=4"]) == 0
    assert "greedy accuracy on 5 held-out prompts: " in capsys.readouterr().out


def test_help_builds_the_parser_without_torch_or_transformers():
    """`grpo --help` and every sub-command's `--help` answer without importing the heavy libraries."""
    script = (
        "import sys\n"
        "from grpo.cli import main\n"
        "for argv in ([], ['train'], ['eval'], ['sft'], ['compare'], ['report'], ['bench'],\n"
        "             ['bench', 'generate'], ['bench', 'logprob'], ['bench', 'step']):\n"
        "    try:\n"
        "        main([*argv, '--help'])\n"
        "    except SystemExit as exit:\n"
        "        assert exit.code == 0, argv\n"
        "print(sorted(name for name in ('torch', 'transformers', 'datasets') if name in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"
