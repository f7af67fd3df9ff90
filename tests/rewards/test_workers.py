"""Reward functions out of process: a fault in one call costs that call's samples the fallback score,
is counted per function, and kills nothing but the worker, which is replaced."""

from __future__ import annotations

import io
import json
import logging
import time

import pytest
from rich.console import Console

from grpo.config import load_config
from grpo.rewards.api import exact_answer
from grpo.rewards.faults import FAULTS, write_fault_module
from grpo.rewards.guard import RewardGuard
from grpo.rewards.workers import importable_name
from grpo.trainers.train import train

STEPS, PROMPTS, GROUP = 20, 4, 4


def test_importable_names():
    assert importable_name(exact_answer) == "grpo.rewards.api:exact_answer"
    assert importable_name(lambda completions, **_: []) is None

    def closure(completions, **_):
        return []

    assert importable_name(closure) is None


@pytest.fixture
def fault_modules(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("kind", FAULTS)
def test_each_fault_gives_the_fallback_and_the_worker_is_replaced(fault_modules, kind, caplog):
    module = __import__(write_fault_module(fault_modules, kind, every=2))
    guard = RewardGuard(fallback=-1.0, timeout=1.0, processes=True, memory_mb=1024)
    try:
        with caplog.at_level(logging.WARNING, logger="grpo.rewards"):
            scores = [guard.score(module.reward, "r", ["11", "1a"], {"answer": ["1", "2"]})[0].tolist()
                      for _ in range(4)]
    finally:
        guard.close()
    assert scores == [[1.0, 0.5], [-1.0, -1.0], [1.0, 0.5], [-1.0, -1.0]]
    assert guard.pop_stats()["reward_fallback/r"] == 4.0
    assert len([r for r in caplog.records if r.name == "grpo.rewards"]) == 1  # reported once per function


def test_a_lambda_runs_in_process_with_one_warning(caplog):
    guard = RewardGuard(processes=True)
    with caplog.at_level(logging.WARNING, logger="grpo.rewards"):
        for _ in range(3):
            values, _ = guard.score(lambda completions, **_: [0.5] * len(completions), "mine", ["a"], {})
    assert values.tolist() == [0.5]
    [warning] = [r.getMessage() for r in caplog.records]
    assert "'mine'" in warning and "not isolated" in warning and "\n" not in warning
    assert guard._workers is None  # no worker was needed


@pytest.mark.slow
@pytest.mark.parametrize("kind", FAULTS)
def test_twenty_step_run_with_a_fault_every_tenth_call(tiny_model_dir, fault_modules, kind):
    name = write_fault_module(fault_modules, kind, every=10)
    config = load_config(None, [f"model.path={tiny_model_dir}", f"log.output_dir={fault_modules}", "log.run_name=r",
                                f"optim.steps={STEPS}", f"rollout.prompts_per_step={PROMPTS}",
                                f"rollout.group_size={GROUP}", "rollout.max_new_tokens=8", "task.test_size=4",
                                "log.eval_every=0", "log.progress=false", "guards.reward_timeout=1",
                                "guards.reward_memory_mb=1024", "guards.reward_fallback=0.5",
                                "algo.dynamic_sampling=false",  # one reward call per step
                                f"rewards=[{{function: '{name}:reward'}}]"])
    started = time.monotonic()
    result = train(config, console=Console(file=io.StringIO()))
    rows = [json.loads(line) for line in (fault_modules / "r" / "metrics.jsonl").read_text().splitlines()]
    assert result.steps == STEPS
    counts = {row["step"]: row["reward_fallback/reward"] for row in rows if "reward_fallback/reward" in row}
    assert {step for step, count in counts.items() if count} == {10, 20}
    assert counts[10] == counts[20] == PROMPTS * GROUP
    assert time.monotonic() - started < 120
