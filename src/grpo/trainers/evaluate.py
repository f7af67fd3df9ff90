"""Greedy held-out accuracy: the number a run reports as "accuracy", overall and per named slice; and,
when asked for, the sampled pass@1 and pass@k of the held-out set (`grpo.algo.pass_at_k`)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from grpo.algo import pass_at_k
from grpo.rewards.api import exact_answer
from grpo.rewards.guard import RewardGuard
from grpo.rollout import SamplingParams, generate
from grpo.tasks.api import Example, HeldOutSlice, reward_columns


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


ACCURACY_KEY = "eval_accuracy"
SLICE_PREFIX = "eval/"  # metric key of a slice: eval/<name>
PASS_PREFIX = "eval_pass@"  # metric keys of the sampled pass rates: eval_pass@1, eval_pass@<k>


@dataclass(frozen=True)
class PassAtK:
    """Sampled pass rates of the held-out set: `samples` (n) completions per prompt drawn with `params`
    from a generator seeded with `seed` (the same draws at every evaluation), pass@1 and pass@`k`."""

    samples: int
    k: int
    params: SamplingParams
    seed: int = 0


def sampled_pass_rates(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    examples: list[Example],
    spec: PassAtK,
    check: Callable[..., list[float | None]] = exact_answer,
    guard: RewardGuard | None = None,
    batch_size: int = 1024,
) -> dict[str, float]:
    """{"eval_pass@1": ..., "eval_pass@<k>": ...}: the mean over `examples` of the unbiased estimator
    (`grpo.algo.pass_at_k`) from n sampled completions per prompt; a sample passes when `check` gives 1.0."""
    generator = torch.Generator(device=next(model.parameters()).device)
    generator.manual_seed(spec.seed)
    per_pass = max(1, batch_size // spec.samples)  # prompts per generation pass
    counts: list[int] = []
    for start in range(0, len(examples), per_pass):
        chunk = examples[start : start + per_pass]
        batch = generate(model, [tokenizer(example.prompt)["input_ids"] for example in chunk],
                         group_size=spec.samples, params=spec.params, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, generator=generator)
        texts = tokenizer.batch_decode(batch.completion_ids, skip_special_tokens=True)  # N = len(chunk) * n
        scores = _scores(check, guard, texts, reward_columns(chunk, repeat=spec.samples))
        passed = [value is not None and value >= 1.0 for value in scores]
        counts += [sum(passed[i : i + spec.samples]) for i in range(0, len(passed), spec.samples)]
    correct = torch.tensor(counts, dtype=torch.long)  # (B,)
    return {f"{PASS_PREFIX}{k}": float(pass_at_k(correct, spec.samples, k).mean()) for k in sorted({1, spec.k})}


@dataclass
class HeldOutEvaluator:
    """Greedy accuracy on the task's held-out set (`eval_accuracy`) and on each named slice (`eval/<name>`).

    A full evaluation scores every example of every slice; a quick one (the periodic evaluations of a
    run) the first `quick_size` of each, so curves stay cheap while the base and final figures use the
    whole slices. All prompts go through one batched greedy pass, each distinct prompt once.
    """

    model: torch.nn.Module
    tokenizer: PreTrainedTokenizerBase
    examples: list[Example]
    slices: list[HeldOutSlice]
    max_new_tokens: int
    check: Callable[..., list[float | None]] = exact_answer
    quick_size: int = 100
    autocast: Callable[[], AbstractContextManager] = nullcontext
    batch_size: int = 1024  # greedy rows per pass: on CPU, 4x the training micro-batch is about 1.5x faster
    guard: RewardGuard | None = None  # the run's reward guard: the check runs isolated like the rewards
    pass_rates: PassAtK | None = None  # sampled pass@1 and pass@k of `examples`, in full evaluations only

    def __call__(self, full: bool = True) -> dict[str, float]:
        """{"eval_accuracy": overall, "eval/<slice>": accuracy, ...} of the model as it is now, and in a
        full evaluation with `pass_rates` set, "eval_pass@1" and "eval_pass@<k>" too."""
        limit = None if full else self.quick_size
        parts = [("", self.examples)] + [(s.name, list(s.examples[:limit])) for s in self.slices]
        distinct = list({example.prompt: example for _, chunk in parts for example in chunk}.values())
        with self.autocast():
            records = greedy_accuracy(self.model, self.tokenizer, distinct, self.max_new_tokens,
                                      self.batch_size, self.check, self.guard).records
        correct = {str(record["prompt"]): bool(record["correct"]) for record in records}
        scores = {}
        for name, chunk in parts:
            key = SLICE_PREFIX + name if name else ACCURACY_KEY
            # A check that returned too few scores leaves prompts unscored (wrong); the reward guard reports it.
            scores[key] = sum(correct.get(example.prompt, False) for example in chunk) / max(len(chunk), 1)
        for piece in self.slices:
            if piece.parts:  # a mean of other slices, every part weighing the same
                parts = [scores[SLICE_PREFIX + part] for part in piece.parts]
                scores[SLICE_PREFIX + piece.name] = sum(parts) / len(parts)
        if full and self.pass_rates is not None:
            with self.autocast():
                scores.update(sampled_pass_rates(self.model, self.tokenizer, self.examples, self.pass_rates,
                                                 self.check, self.guard, self.batch_size))
        return scores


def forgotten(base: dict[str, float], final: dict[str, float], points: float) -> list[str]:
    """Slices whose final accuracy ends more than `points` percentage points below the base's."""
    return [key.removeprefix(SLICE_PREFIX) for key in final
            if key.startswith(SLICE_PREFIX) and key in base and (base[key] - final[key]) * 100 > points]


def slice_table(slices: list[HeldOutSlice], base: dict[str, float], final: dict[str, float] | None = None,
                label: str = "base") -> str:
    """A plain-text table of accuracy per slice: `base` (headed `label`), and `final` with the change when given."""
    head = f"{'slice':<15} {'n':>5}  {label:>6}" + (f"  {'final':>6}  {'change':>7}" if final else "")
    lines = [head + "  what it holds"]
    for piece in slices:
        key = SLICE_PREFIX + piece.name
        if key not in base:
            continue
        row = f"{piece.name:<15} {len(piece.examples):>5}  {base[key]:>6.3f}"
        if final:
            row += f"  {final[key]:>6.3f}  {100 * (final[key] - base[key]):>+6.1f}p"
        lines.append(f"{row}  {piece.description}")
    return "\n".join(lines)
