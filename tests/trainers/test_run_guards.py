"""Whole (tiny) runs with injected faults: NaN losses and rewards, reward functions that raise, hang
and return garbage; each fail-loud check provoked by a small config that triggers it."""

from __future__ import annotations

import io
import json
import logging
import math
import re
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from rich.console import Console
from safetensors.torch import load_file

import grpo.trainers.grpo as grpo_module
from grpo.config import load_config
from grpo.models.tiny import build_char_tokenizer, build_tiny_llama, save_model_dir
from grpo.rewards import exact_answer
from grpo.rewards.guard import RewardError
from grpo.trainers.checks import Diverged
from grpo.trainers.train import train


def ones_share(completions, **_):
    return [text.count("1") / max(1, len(text)) for text in completions]


def run(model_dir: Path, tmp_path: Path, overrides: list[str], reward_fn=ones_share, steps: int = 4):
    config = load_config(None, [f"model.path={model_dir}", f"log.output_dir={tmp_path}", "log.run_name=r",
                                f"optim.steps={steps}", "rollout.prompts_per_step=4", "rollout.group_size=4",
                                "rollout.max_new_tokens=8", "task.test_size=4", "log.eval_every=0",
                                "log.progress=false", "optim.lr=1e-2", *overrides])
    result = train(config, reward_fn=reward_fn, console=Console(file=io.StringIO()))
    rows = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    return result, rows


def policy_at(tmp_path: Path, step: int) -> dict[str, torch.Tensor]:
    return load_file(str(tmp_path / "r" / "checkpoints" / f"step-{step:08d}" / "policy.safetensors"))


def nan_loss_on_calls(monkeypatch, calls: set[int]) -> None:
    """Make the loss NaN on the given (1-based) micro-batch loss calls (one call per step here); the
    gradients stay finite, so only the loss check can catch it."""
    real, count = grpo_module.grpo_loss, [0]

    def poisoned(*args, **kwargs):
        count[0] += 1
        part = real(*args, **kwargs)
        return replace(part, loss=part.loss + math.nan) if count[0] in calls else part  # NaN loss, finite gradients

    monkeypatch.setattr(grpo_module, "grpo_loss", poisoned)


def test_nan_loss_skips_the_update_counts_it_and_the_run_finishes(tiny_model_dir, tmp_path, monkeypatch, caplog):
    nan_loss_on_calls(monkeypatch, {2, 3})
    with caplog.at_level(logging.WARNING, logger="grpo.checks"):
        result, rows = run(tiny_model_dir, tmp_path, ["checkpoint.every=1", "checkpoint.keep=10"])
    assert result.steps == 4 and result.checkpoint is not None
    assert [row["skipped_update"] for row in rows[1:]] == [0.0, 1.0, 1.0, 0.0]
    assert [row["skipped_updates_total"] for row in rows[1:]] == [0.0, 1.0, 2.0, 2.0]
    assert rows[2]["grad_norm"] is None  # NaN is written as null
    before, after_skips, after_good = policy_at(tmp_path, 1), policy_at(tmp_path, 3), policy_at(tmp_path, 4)
    assert all(before[key].equal(after_skips[key]) for key in before)  # no weight change on skipped steps
    assert not all(before[key].equal(after_good[key]) for key in before)  # ...but the next good step updates
    messages = [record.getMessage() for record in caplog.records if "update skipped" in record.getMessage()]
    assert messages == [
        "warning: step 2: update skipped because the loss or gradient norm is not finite (1 in a row, 1 in total; "
        "the run stops after guards.max_consecutive_skips=5 in a row)",
        "warning: step 3: update skipped because the loss or gradient norm is not finite (2 in a row, 2 in total; "
        "the run stops after guards.max_consecutive_skips=5 in a row)",
    ]


def test_consecutive_skips_roll_back_to_the_last_good_checkpoint_and_stop(tiny_model_dir, tmp_path, monkeypatch):
    nan_loss_on_calls(monkeypatch, {3, 4, 5, 6})
    with pytest.raises(Diverged) as error:
        run(tiny_model_dir, tmp_path, ["checkpoint.every=1", "checkpoint.keep=10", "guards.max_consecutive_skips=2"],
            steps=6)
    good = tmp_path / "r" / "checkpoints" / "step-00000002"
    assert str(error.value) == (
        f"steps 3-4: 2 updates in a row skipped because the loss or gradient norm was not finite; weights rolled "
        f"back to {good}; once fixed, resume from it with: grpo train --resume {good}; lower optim.lr or "
        f"optim.max_grad_norm, or check the reward"
    )
    rows = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 4 and not (tmp_path / "r" / "final").exists()


def faulty_reward(completions, **_):
    """Step 1: NaN for two samples; step 2 raises; step 3 hangs; step 4 returns garbage."""
    if len(completions) != 16:  # held-out evaluation (4 prompts) also scores with the run's reward
        return ones_share(completions)
    faulty_reward.calls += 1
    if faulty_reward.calls == 2:
        raise KeyError("answer")
    if faulty_reward.calls == 3:
        time.sleep(5)
    if faulty_reward.calls == 4:
        return {"not": "a list"}
    values = ones_share(completions)
    return [math.nan, math.inf, *values[2:]] if faulty_reward.calls == 1 else values


def test_reward_failures_score_the_fallback_are_counted_and_the_run_finishes(tiny_model_dir, tmp_path, caplog):
    faulty_reward.calls = 0
    with caplog.at_level(logging.WARNING):
        # in-process (threads): the call counter lives in this process; worker isolation has its own tests
        overrides = ["guards.reward_timeout=0.5", "guards.reward_fallback=0.25", "guards.reward_processes=false",
                     "algo.dynamic_sampling=false"]  # one reward call per step
        result, rows = run(tiny_model_dir, tmp_path, overrides, reward_fn=faulty_reward, steps=5)
    assert result.steps == 5
    steps = {row["step"]: row for row in rows}
    assert steps[1]["reward_rejected"] == 2.0 and steps[1]["invalid_rewards"] == 2 / 16
    assert [steps[s]["reward_fallback/faulty_reward"] for s in (1, 2, 3, 4, 5)] == [0.0, 16.0, 16.0, 16.0, 0.0]
    assert steps[2]["reward_mean"] == 0.25 and steps[2]["reward_std"] == 0.0
    assert all(math.isfinite(row["loss"]) for row in rows[1:])  # NaN rewards never reached the advantages
    warnings = [record.getMessage() for record in caplog.records if record.name == "grpo.rewards"]
    assert len(warnings) == 1 and warnings[0].startswith("reward function 'faulty_reward' raised KeyError: 'answer'")
    assert "warning: step 1: 2 rewards were NaN, infinite or outside [guards.reward_min, guards.reward_max]; they " \
           "are excluded from the advantages and counted in reward_rejected (reported once)" in check_warnings(caplog)


def test_strict_rewards_make_a_wrong_length_fatal(tiny_model_dir, tmp_path):
    # the first call is the base held-out evaluation (4 prompts), which goes through the same guard
    with pytest.raises(RewardError, match=r"^reward function '<lambda>' returned 1 values for \d+ completions "
                                          r"\(guards.reward_strict is on\)$"):
        run(tiny_model_dir, tmp_path, ["guards.reward_strict=true"], reward_fn=lambda completions, **_: [1.0])


def check_warnings(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "grpo.checks"]


def test_most_completions_truncated_warns_once(tiny_model_dir, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="grpo.checks"):
        run(tiny_model_dir, tmp_path, ["rollout.max_new_tokens=2"], steps=2)
    [warning] = check_warnings(caplog)
    assert re.fullmatch(r"warning: step 1: \d+% of completions hit rollout.max_new_tokens=2 without an EOS and score "
                        r"as unfinished; raise rollout.max_new_tokens \(reported once; threshold "
                        r"guards.truncation_warn=0.5\)", warning), warning


def test_zero_reward_variance_for_many_steps_warns(tiny_model_dir, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="grpo.checks"):  # a random model never solves arithmetic
        run(tiny_model_dir, tmp_path, ["guards.zero_variance_steps=2", "guards.truncation_warn=1"],
            reward_fn=exact_answer, steps=2)
    assert check_warnings(caplog) == [
        "warning: steps 1-2: every group had identical rewards, so every advantage is 0 and nothing is learned; "
        "make the task match the model (neither always right nor always wrong), or raise rollout.group_size or "
        "rollout.temperature"
    ]


def test_micro_batch_that_splits_groups_warns_with_the_nearest_valid_sizes(tiny_model_dir, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="grpo.checks"):
        run(tiny_model_dir, tmp_path, ["optim.micro_batch_size=6", "guards.truncation_warn=1"], steps=1)
    assert check_warnings(caplog) == [
        "warning: optim.micro_batch_size (6) is not a multiple of rollout.group_size (4), so micro-batches split "
        "groups; nearest valid settings: optim.micro_batch_size=4 or 8"
    ]


@pytest.fixture(scope="module")
def sharp_model_dir(tmp_path_factory) -> Path:
    """A tiny model with scaled-up weights: confident logits, so float32 path differences show up."""
    tokenizer = build_char_tokenizer()
    model = build_tiny_llama(tokenizer, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(8)
    path = tmp_path_factory.mktemp("sharp")
    save_model_dir(model, tokenizer, path)
    return path


def test_trainer_and_sampler_logprob_gap_is_reported_at_the_first_step(sharp_model_dir, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="grpo.checks"):
        _, rows = run(sharp_model_dir, tmp_path, ["guards.logprob_tolerance=1e-9", "guards.truncation_warn=1"],
                      steps=2)
    gap = rows[1]["logprob_gap_max"]
    assert 0 < gap < 1e-3 and "logprob_gap_max" not in rows[2]  # measured at the first step only
    [warning] = check_warnings(caplog)
    assert warning.startswith(f"warning: step 1: the trainer's log-probs of the sampled tokens differ from the "
                              f"sampler's by up to {gap:.3g} (guards.logprob_tolerance=1e-09); importance ratios "
                              f"span [")
    assert warning.endswith("instead of 1; use model.dtype=float32 or check that sampling and training see the "
                            "same model and temperature")


def test_a_full_disk_mid_run_stops_with_a_clear_error_and_the_run_resumes_from_the_last_save(
        tiny_model_dir, tmp_path, monkeypatch):
    import errno

    import grpo.run.checkpoint as checkpoint_module
    from grpo.run.checkpoint import CheckpointError, read_checkpoint

    real_write = checkpoint_module._write_tensors

    def disk_fills_during_the_step_4_save(tensors, path):
        if path.parent.name.startswith(".step-00000004.") and path.name == "reference.safetensors":
            raise OSError(errno.ENOSPC, "No space left on device")  # policy.safetensors is already written
        real_write(tensors, path)

    monkeypatch.setattr(checkpoint_module, "_write_tensors", disk_fills_during_the_step_4_save)
    checkpoints = tmp_path / "r" / "checkpoints"
    with pytest.raises(CheckpointError) as error:
        run(tiny_model_dir, tmp_path, ["checkpoint.every=2"])
    assert str(error.value) == (f"could not save checkpoint {checkpoints / 'step-00000004'}: No space left on device "
                                f"(errno 28); the previous checkpoint {checkpoints / 'step-00000002'} is intact")
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step-00000000", "step-00000002"]
    assert read_checkpoint(checkpoints / "step-00000002").step == 2
    monkeypatch.setattr(checkpoint_module, "_write_tensors", real_write)
    config = load_config(tmp_path / "r" / "config.yaml")
    result = train(config, reward_fn=ones_share, console=Console(file=io.StringIO()), resume=tmp_path / "r")
    assert result.steps == 4 and (tmp_path / "r" / "final" / "model.safetensors").is_file()
    rows = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [0, 1, 2, 3, 4]
