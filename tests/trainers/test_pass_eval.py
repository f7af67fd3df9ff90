"""Sampled pass@1 and pass@k in the held-out evaluation: n samples per prompt, counted per prompt,
logged only by full evaluations, and a k above n refused in one line."""

from __future__ import annotations

import pytest

from grpo.cli import main
from grpo.models.load import load_policy, load_tokenizer
from grpo.rollout import SamplingParams
from grpo.tasks.arithmetic import ArithmeticTask
from grpo.trainers.evaluate import HeldOutEvaluator, PassAtK, sampled_pass_rates

pytestmark = pytest.mark.usefixtures("one_thread")


def every_fourth(completions: list[str], **_: list[object]) -> list[float]:
    """Passes the first of every four completions: c = 1 of n = 4 for each prompt (prompt-major order)."""
    return [float(index % 4 == 0) for index in range(len(completions))]


@pytest.fixture(scope="module")
def model_and_tokenizer(tiny_model_dir):
    return load_policy(tiny_model_dir, "float32", "cpu"), load_tokenizer(tiny_model_dir)


def test_counts_each_prompts_samples(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    examples = ArithmeticTask(test_size=5).test_examples()
    spec = PassAtK(samples=4, k=2, params=SamplingParams(max_new_tokens=4))
    rates = sampled_pass_rates(model, tokenizer, examples, spec, every_fourth, batch_size=8)  # 2 prompts a pass
    assert rates == pytest.approx({"eval_pass@1": 0.25, "eval_pass@2": 0.5})  # 1 - C(3,2)/C(4,2)
    always = sampled_pass_rates(model, tokenizer, examples, spec, lambda completions, **_: [1.0] * len(completions))
    assert always == {"eval_pass@1": 1.0, "eval_pass@2": 1.0}


def test_only_full_evaluations_sample(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    spec = PassAtK(samples=4, k=4, params=SamplingParams(max_new_tokens=4))
    evaluate = HeldOutEvaluator(model, tokenizer, ArithmeticTask(test_size=3).test_examples(), [], 4,
                                every_fourth, pass_rates=spec)
    assert set(evaluate(True)) == {"eval_accuracy", "eval_pass@1", "eval_pass@4"}
    assert set(evaluate(False)) == {"eval_accuracy"}


def test_k_above_the_samples_is_one_line_naming_the_keys(tmp_path, capsys):
    code = main(["train", "log.eval_pass_samples=4", "log.eval_pass_k=8", f"log.output_dir={tmp_path}"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "log.eval_pass_k (8) must be <= log.eval_pass_samples (4)" in err
