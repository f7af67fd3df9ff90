"""Greedy held-out accuracy: the number a run reports as "accuracy"."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from grpo.rewards.api import exact_answer
from grpo.rewards.guard import RewardGuard
from grpo.rollout import SamplingParams, generate
from grpo.tasks.api import Example, reward_columns


@dataclass(frozen=True)
class EvalResult:
    """Accuracy over the examples and every (prompt, completion, answer, correct) record."""

    accuracy: float
    records: list[dict[str, object]]


def greedy_accuracy(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    examples: list[Example],
    max_new_tokens: int,
    batch_size: int = 256,
    check: Callable[..., list[float | None]] = exact_answer,
    guard: RewardGuard | None = None,
) -> EvalResult:
    """Greedy-decode every prompt; a completion is correct when `check` (a reward function, by default
    the exact final answer) gives it 1.0, with the example's answer and columns as keywords. With a
    `guard`, `check` is called through it, as the training rewards are (timeouts, worker processes)."""
    params = SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens)
    records: list[dict[str, object]] = []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        prompts = [tokenizer(example.prompt)["input_ids"] for example in chunk]
        batch = generate(
            model,
            prompts,
            group_size=1,
            params=params,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        texts = tokenizer.batch_decode(batch.completion_ids, skip_special_tokens=True)
        scores = _scores(check, guard, texts, reward_columns(chunk))
        for example, text, value in zip(chunk, texts, scores):
            correct = value is not None and value >= 1.0
            records.append({"prompt": example.prompt, "completion": text, "answer": example.answer, "correct": correct})
    accuracy = sum(bool(r["correct"]) for r in records) / max(len(records), 1)
    return EvalResult(accuracy=accuracy, records=records)


def _scores(check: Callable[..., list[float | None]], guard: RewardGuard | None, texts: list[str],
            columns: dict[str, list[object]]) -> list[float | None]:
    if guard is None:
        return check(texts, **columns)
    values, valid = guard.score(check, getattr(check, "__name__", "check"), texts, columns)
    return [value if ok else None for value, ok in zip(values.tolist(), valid.tolist())]
