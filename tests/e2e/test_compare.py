"""`grpo compare` end to end on a tiny model: one child per method, same budget, table and plot written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from grpo.cli import main


@pytest.mark.slow
def test_compare_writes_table_curves_and_plot(tiny_model_dir: Path, tmp_path: Path, capsys):
    out = tmp_path / "cmp"
    code = main(["compare", "--output", str(out), f"model.path={tiny_model_dir}", "optim.steps=2",
                 "log.eval_every=1", "rollout.prompts_per_step=3", "rollout.group_size=2",
                 "rollout.max_new_tokens=6", "task.test_size=4"])
    assert code == 0
    results = {r["method"]: r for r in json.loads((out / "compare.json").read_text())}
    assert set(results) == {"grpo", "ppo", "dpo"}
    assert [results[m]["models_held"] for m in ("grpo", "ppo", "dpo")] == [2, 2, 2]  # PPO's default: value head
    for result in results.values():
        assert [point["step"] for point in result["curve"]] == [0, 1, 2]
        assert result["peak_rss_mib"] > 50 and result["median_step_seconds"] > 0
    def resolved(method: str) -> str:  # the run's saved config without the two keys that name the method
        text = (out / "runs" / method / "config.yaml").read_text()
        return text.replace(f"algorithm: {method}", "").replace(f"run_name: {method}", "")

    assert resolved("ppo") == resolved("grpo") == resolved("dpo")  # same budget and seed
    table = (out / "compare.md").read_text()
    assert table.count("\n") == 5 and "| ppo |" in table and table in capsys.readouterr().out
    assert (out / "compare.png").read_bytes()[:4] == b"\x89PNG"


def test_compare_validates_before_running_anything(tmp_path: Path, capsys):
    code = main(["compare", "--output", str(tmp_path / "cmp"), "algo.eps_high=0.1"])
    assert code == 2 and "algo.eps_high (0.1) must be >= algo.eps (0.2)" in capsys.readouterr().err
    assert not (tmp_path / "cmp").exists()
