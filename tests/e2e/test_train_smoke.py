"""End to end on the precedence task: GRPO raises reward and held-out accuracy, and the checkpoint
it writes scores the same under plain transformers as the run reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from grpo.cli import main
from grpo.tasks.arithmetic import ArithmeticTask

PRECEDENCE_TASK = ("task.min_ops=2", "task.precedence_only=true")  # ten steps show the gain here
SLICES = ("precedence", "left_to_right", "ops1", "ops2", "ops3", "longer", "all")


def hf_greedy_accuracy(model_dir: Path, examples, max_new_tokens: int) -> float:
    """Score a checkpoint the way a user would: plain transformers, one prompt at a time, greedy."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    correct = 0
    for example in examples:
        inputs = tokenizer(example.prompt, return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        text = tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
        correct += text.rsplit("=", 1)[-1].strip() == example.answer
    return correct / len(examples)


@pytest.mark.slow
def test_grpo_improves_the_warm_start_and_the_checkpoint_agrees(tmp_path: Path, capsys):
    code = main(["train", f"log.output_dir={tmp_path}", "log.run_name=smoke", "optim.steps=12",
                 "rollout.prompts_per_step=16", "log.eval_every=6", "task.test_size=100", "log.progress=false",
                 *PRECEDENCE_TASK])
    assert code == 0
    rows = [json.loads(line) for line in (tmp_path / "smoke" / "metrics.jsonl").read_text().splitlines()]
    rewards = [row["reward_mean"] for row in rows if "reward_mean" in row]
    assert sum(rewards[-4:]) / 4 > sum(rewards[:4]) / 4 + 0.05, rewards
    base, final = rows[0]["eval_accuracy"], rows[-1]["eval_accuracy"]
    assert final > base + 0.1, (base, final)
    examples = ArithmeticTask(test_size=100).test_examples()  # the precedence task of PRECEDENCE_TASK
    assert hf_greedy_accuracy(tmp_path / "smoke" / "final", examples, 24) == pytest.approx(final, abs=0.011)
    # The run prints accuracy per held-out slice, and `grpo eval` of its final checkpoint agrees.
    printed = capsys.readouterr().out
    table = printed.split("held-out accuracy per slice")[1]
    finals = {line.split()[0]: line.split()[3] for line in table.splitlines()[2:] if line.split()[0] in SLICES}
    assert set(finals) == set(SLICES)
    logged = {name.removeprefix("eval/"): f"{v:.3f}" for name, v in rows[-1].items() if name.startswith("eval/")}
    assert finals == logged
    assert main(["eval", str(tmp_path / "smoke" / "final"), "task.test_size=100", *PRECEDENCE_TASK]) == 0
    evaluated = capsys.readouterr().out.split("per slice:")[1]
    assert {line.split()[0]: line.split()[2] for line in evaluated.splitlines()[2:]} == finals
