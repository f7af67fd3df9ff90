"""`grpo compare` end to end on a tiny model: every arm, two seeds, per-seed values with intervals, a plot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from grpo.cli import main
from grpo.compare import arm_overrides, t_interval


@pytest.mark.slow
def test_compare_two_seeds_writes_intervals_per_slice_and_a_banded_plot(tiny_model_dir: Path, tmp_path: Path,
                                                                        capsys):
    out = tmp_path / "cmp"
    # Two arms keep it short (each child starts torch); PPO and DPO arms run the same code path as GRPO's.
    code = main(["compare", "--output", str(out), "--seeds", "2", "--methods", "grpo,sft",
                 f"model.path={tiny_model_dir}",
                 "optim.steps=2", "log.eval_every=1", "rollout.prompts_per_step=2", "rollout.group_size=2",
                 "rollout.max_new_tokens=6", "task.test_size=4", "task.slice_size=3", "log.eval_slice_size=2",
                 "sft.batch_size=4", "algo.beta=0.07", "dpo.beta=0.2"])
    assert code == 0
    runs = json.loads((out / "compare.json").read_text())
    assert sorted((r["method"], r["seed"]) for r in runs) == [("grpo", 0), ("grpo", 1), ("sft", 0), ("sft", 1)]
    for run in runs:
        assert "eval/longer" in run["final"] and run["best"]["eval_accuracy"] >= run["final"]["eval_accuracy"]
        assert run["peak_rss_mib"] > 50 and run["median_step_seconds"] > 0
    sft = [r for r in runs if r["method"] == "sft"]
    assert all(r["train_seconds"] > 0 for r in sft)  # trained for the RL arms' wall time
    # Each override reached only the arms it applies to.
    config = lambda name: (out / "runs" / name / "config.yaml").read_text()
    assert "beta: 0.07" in config("grpo-seed0") and "beta: 0.2" not in config("grpo-seed1")  # dpo.beta: DPO only
    assert "seed: 1" in config("grpo-seed1")
    assert json.loads((out / "runs" / "sft-seed1" / "sft.json").read_text())["batch_size"] == 4
    table = (out / "compare.md").read_text()
    assert "| grpo | final, longer |" in table and " ± " in table and table in capsys.readouterr().out
    assert (out / "compare.png").read_bytes()[:4] == b"\x89PNG"


def test_t_interval_and_override_routing():
    # mean 2, sample std 1, n 3: half-width = t(0.975, 2) * 1 / sqrt(3) = 4.303 / 1.732 = 2.484
    mean, half = t_interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(2.4843, abs=1e-4)
    assert t_interval([0.5]) == (0.5, 0.0)
    overrides = ["algo.beta=0", "ppo.lam=0.9", "dpo.beta=0.2", "sft.lr=1e-4", "rollout.group_size=4", "optim.lr=1e-4"]
    assert arm_overrides("grpo", overrides) == ["algo.beta=0", "rollout.group_size=4", "optim.lr=1e-4"]
    assert arm_overrides("ppo", overrides) == ["algo.beta=0", "ppo.lam=0.9", "rollout.group_size=4", "optim.lr=1e-4"]
    assert arm_overrides("dpo", overrides) == ["dpo.beta=0.2", "rollout.group_size=4", "optim.lr=1e-4"]
    assert arm_overrides("sft", overrides) == ["sft.lr=1e-4", "optim.lr=1e-4"]


def test_compare_validates_before_running_anything(tmp_path: Path, capsys):
    code = main(["compare", "--output", str(tmp_path / "cmp"), "algo.eps_high=0.1"])
    assert code == 2 and "algo.eps_high (0.1) must be >= algo.eps (0.2)" in capsys.readouterr().err
    assert not (tmp_path / "cmp").exists()
    assert main(["compare", "--output", str(tmp_path / "cmp"), "sft.stepz=3"]) == 2
    assert "stepz" in capsys.readouterr().err and not (tmp_path / "cmp").exists()
