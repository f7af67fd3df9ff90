"""`grpo sft`: the supervised warm start behind the built-in base policies.

A tiny Llama learns from a careless teacher, which the task supplies (`Teacher`: its characters and a
`teach` function). For every training example the teacher writes a completion; with probability
`careless_fraction` it makes the task's typical mistake on purpose. Arithmetic: a worked solution one
operation per step ("2+2*6=2+12=14"), or, carelessly, read left to right ("2+2*6=4*6=24").
fn_from_examples: the function's return expression ("2*x+3"), or, carelessly, the shown values read
as a line's slope and constant ("5*x+3" from f(0)=3, f(1)=5).
The student learns the form of the task but is unsure of its content: real but imperfect skill,
which only the verifiable reward in GRPO can correct. Training stops after a fixed number of steps;
the held-out accuracy printed at the end uses the task's own check (the sandbox, for code).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from grpo.config.schema import SFTConfig
from grpo.errors import UserError
from grpo.models.tiny import build_char_tokenizer, build_tiny_llama
from grpo.run.checkpoint import save_model_atomic
from grpo.tasks.api import Example, Task
from grpo.tasks.registry import build_task_setup
from grpo.trainers.evaluate import greedy_accuracy
from grpo.trainers.setup import build_task


@dataclass(frozen=True)
class SFTResult:
    accuracy: float
    output: Path


@runtime_checkable
class Teacher(Task, Protocol):
    """A task that can warm-start a character-level model: every character its prompts and completions
    use, and the completion its teacher writes for an example (a wrong one when `careless`)."""

    alphabet: str

    def teach(self, example: Example, careless: bool) -> str: ...


def teacher_of(task: Task, name: str) -> Teacher:
    """`task` as a `Teacher`, or a one-line error naming `task.name` when it has no teacher."""
    if not isinstance(task, Teacher):
        raise UserError(f"task.name: grpo sft has no teacher for task {name!r}; use arithmetic or fn_from_examples")
    return task


def teacher_batch(task: Teacher, rng: random.Random, size: int, careless_fraction: float) -> list[tuple[str, str]]:
    """(prompt, completion) pairs written by the careless teacher."""
    batch = []
    for _ in range(size):
        example = task.sample(rng, "train")
        careless = rng.random() < careless_fraction
        batch.append((example.prompt, task.teach(example, careless)))
    return batch


def check_positions(tokenizer: PreTrainedTokenizerBase, examples: list[Example], max_new_tokens: int,
                    max_positions: int) -> None:
    """Every held-out prompt plus `max_new_tokens` must fit the model's `max_positions`."""
    longest = max(len(tokenizer(example.prompt)["input_ids"]) for example in examples)
    if longest + max_new_tokens > max_positions:
        raise UserError(f"max_positions ({max_positions}) is too short: prompts of up to {longest} tokens plus "
                        f"max_new_tokens ({max_new_tokens}) need {longest + max_new_tokens}; raise max_positions")


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
    """Train a tiny Llama from scratch on teacher completions and save it with its tokenizer."""
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    setup = build_task_setup(config.task)
    task = teacher_of(setup.task, config.task.name)
    tokenizer = build_char_tokenizer(task.alphabet)
    examples = task.test_examples()
    check_positions(tokenizer, examples, config.max_new_tokens, config.max_positions)
    model = build_tiny_llama(tokenizer, hidden_size=config.hidden_size, num_layers=config.num_layers,
                             num_heads=config.num_heads, intermediate_size=4 * config.hidden_size,
                             max_positions=config.max_positions, seed=config.seed).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.0)
    for step in range(1, config.steps + 1):
        pairs = teacher_batch(task, rng, config.batch_size, config.careless_fraction)
        loss = completion_only_loss(model, tokenizer, pairs)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % log_every == 0 or step == config.steps:
            print(f"sft step {step}/{config.steps}  loss {loss.item():.4f}", flush=True)
    accuracy = greedy_accuracy(model, tokenizer, examples, config.max_new_tokens, check=setup.check).accuracy
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
    task = teacher_of(build_task(config.task), config.task.name)
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
        values = {"loss": float(loss.detach()), "step_time": step_time}
        if spent >= seconds or (eval_every and step % eval_every == 0):
            values.update(evaluate_model(model, tokenizer, spent >= seconds))
        log(step, values)
    return step
