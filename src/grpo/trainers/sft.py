"""`grpo sft`: the supervised warm start behind the default base policy.

A tiny Llama learns from a careless teacher. For every training expression the teacher writes a
worked solution, one operation per step ("2+2*6=2+12=14"); with probability `careless_fraction` it
reads the expression left to right instead ("2+2*6=4*6=24"). The student therefore learns to work
expressions out step by step but is unsure which operation comes first: real but imperfect skill,
which only the verifiable reward in GRPO can correct. Training stops after a fixed number of steps.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from grpo.config.schema import SFTConfig
from grpo.models.tiny import build_char_tokenizer, build_tiny_llama
from grpo.run.checkpoint import save_model_atomic
from grpo.tasks.arithmetic import ArithmeticTask, worked_solution
from grpo.trainers.evaluate import greedy_accuracy
from grpo.trainers.setup import build_task


@dataclass(frozen=True)
class SFTResult:
    accuracy: float
    output: Path


def teacher_batch(
    task: ArithmeticTask, rng: random.Random, size: int, careless_fraction: float
) -> list[tuple[str, str]]:
    """(prompt, completion) pairs written by the careless teacher."""
    batch = []
    for _ in range(size):
        example = task.sample(rng, "train")
        careful = rng.random() >= careless_fraction
        batch.append((example.prompt, worked_solution(example.prompt[:-1], precedence=careful)))
    return batch


def completion_only_loss(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, pairs: list[tuple[str, str]]
) -> torch.Tensor:
    """Cross-entropy on completion tokens (and EOS) only; prompts and padding are not learned."""
    prompts = [tokenizer(prompt)["input_ids"] for prompt, _ in pairs]
    full = [tokenizer(prompt + completion)["input_ids"] + [tokenizer.eos_token_id] for prompt, completion in pairs]
    width = max(len(ids) for ids in full)
    input_ids = torch.full((len(full), width), tokenizer.pad_token_id, dtype=torch.long)  # (n, S) right-padded
    labels = torch.full_like(input_ids, -100)
    for row, (prompt, ids) in enumerate(zip(prompts, full)):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, len(prompt) : len(ids)] = torch.tensor(ids[len(prompt) :])
    attention_mask = torch.arange(width) < torch.tensor([len(ids) for ids in full])[:, None]  # (n, S)
    device = next(model.parameters()).device
    return model(input_ids=input_ids.to(device), attention_mask=attention_mask.long().to(device),
                 labels=labels.to(device)).loss


def run_sft(config: SFTConfig, log_every: int = 100) -> SFTResult:
    """Train a tiny Llama from scratch on teacher solutions and save it with its tokenizer."""
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    task = build_task(config.task)
    tokenizer = build_char_tokenizer()
    model = build_tiny_llama(tokenizer, seed=config.seed).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.0)
    for step in range(1, config.steps + 1):
        pairs = teacher_batch(task, rng, config.batch_size, config.careless_fraction)
        loss = completion_only_loss(model, tokenizer, pairs)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % log_every == 0 or step == config.steps:
            print(f"sft step {step}/{config.steps}  loss {loss.item():.4f}", flush=True)
    accuracy = greedy_accuracy(model, tokenizer, task.test_examples(), config.max_new_tokens).accuracy
    output = save_model_atomic(model, tokenizer, Path(config.output))
    return SFTResult(accuracy=accuracy, output=output)


def supervised_baseline(config: SFTConfig, model_path: str, evaluate_model: Callable[..., dict[str, float]],
                        seconds: float, eval_every: int, log: Callable[[int, dict[str, float]], None]) -> int:
    """Continue supervised training of `model_path` on the labels its own warm start had (the careless
    teacher of `config`) for `seconds` of training wall time; returns the number of steps taken.

    This is the baseline a verifier-trained method must beat: same base, same budget, only the
    demonstrations that existed. `evaluate_model(model, tokenizer, full)` scores held-out accuracy
    at the start, every `eval_every` steps and at the end; `log(step, values)` records each row.
    """
    from grpo.models.load import load_policy, load_tokenizer, resolve_model_path

    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    task = build_task(config.task)
    path = resolve_model_path(model_path)
    tokenizer = load_tokenizer(path)
    model = load_policy(path, "float32", torch.device("cpu")).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.0)
    log(0, evaluate_model(model, tokenizer, True))
    spent, step = 0.0, 0
    while spent < seconds:
        step += 1
        tick = time.perf_counter()
        loss = completion_only_loss(model, tokenizer, teacher_batch(task, rng, config.batch_size,
                                                                     config.careless_fraction))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step_time = time.perf_counter() - tick
        spent += step_time
        values = {"loss": float(loss), "step_time": step_time}
        if spent >= seconds or (eval_every and step % eval_every == 0):
            values.update(evaluate_model(model, tokenizer, spent >= seconds))
        log(step, values)
    return step
