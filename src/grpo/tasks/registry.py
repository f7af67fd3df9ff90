"""Which task a config names: its examples, its default rewards and its accuracy check.

Each task name maps to a builder; the trainer never branches on the name. A builder receives the
task section and the tokenizer (for chat templates) and returns a TaskSetup.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

from grpo.config.schema import TaskConfig
from grpo.errors import UserError
from grpo.rewards.api import exact_answer
from grpo.rewards.code import CodeReward, shared_pool
from grpo.rewards.combine import RewardCallable, WeightedReward
from grpo.rewards.countdown import countdown
from grpo.rewards.format import r1_format
from grpo.rewards.math_answer import gsm8k_reference, math_answer, math_reference
from grpo.sandbox.runner import Limits
from grpo.tasks import countdown as countdown_task
from grpo.tasks import gsm8k
from grpo.tasks import math as math_task
from grpo.tasks.api import Task
from grpo.tasks.arithmetic import ArithmeticTask
from grpo.tasks.code import code_examples
from grpo.tasks.files import ListTask, load_rows, split_holdout, to_examples
from grpo.tasks.prompts import PromptFormat

FORMAT_WEIGHT = 0.5  # the format reward is a shaping term: half the weight of a right answer
REFERENCE_PARSERS: dict[str, Callable[[str], str]] = {
    "raw": str.strip,
    "gsm8k": gsm8k_reference,
    "boxed": math_reference,
}


@dataclass(frozen=True)
class TaskSetup:
    """A task with the rewards it trains on by default and the check behind its accuracy."""

    task: Task
    rewards: list[WeightedReward]
    check: RewardCallable


def _prompt_format(config: TaskConfig, default: str, tokenizer: PreTrainedTokenizerBase | None) -> PromptFormat:
    return PromptFormat(config.template or default, config.chat, config.system_prompt, tokenizer)


def _rewards(answer: RewardCallable, prompts: PromptFormat) -> list[WeightedReward]:
    rewards = [WeightedReward(answer.__name__, answer, 1.0)]
    if prompts.template == "r1":
        rewards.append(WeightedReward("r1_format", r1_format, FORMAT_WEIGHT))
    return rewards


def _arithmetic(config: TaskConfig, tokenizer: PreTrainedTokenizerBase | None) -> TaskSetup:
    task = ArithmeticTask(config.min_ops, config.max_ops, config.max_operand, config.paren_prob,
                          config.precedence_only, config.test_size)
    return TaskSetup(task, [WeightedReward("exact_answer", exact_answer, 1.0)], exact_answer)


def _dataset(config: TaskConfig, prompts: PromptFormat, defaults: dict[str, str], answer_format: str,
             question: Callable[[dict], str] | None = None) -> ListTask:
    """Examples from `task.train_path` (and `task.test_path`), columns mapped over the defaults."""
    mapping = {**defaults, **config.columns}
    ask = question or (lambda row: str(row[mapping["prompt"]]))
    if question is None and "prompt" not in mapping:
        raise UserError("task.columns: map the prompt role to a column, e.g. task.columns={prompt: question}")
    reference = REFERENCE_PARSERS[config.answer_format or answer_format]

    def read(path: str, key: str) -> list:
        return to_examples(load_rows(path, config.split, key), mapping, ask, reference, prompts.render, path)

    examples = read(config.train_path, "task.train_path")
    if config.test_path is None:
        train, test = split_holdout(examples, config.test_size, config.train_path)
    else:
        train, test = examples, read(config.test_path, "task.test_path")[: config.test_size]
    return ListTask(tuple(train), tuple(test))


def _math_like(module: object, default_template: str) -> Callable[..., TaskSetup]:
    def build(config: TaskConfig, tokenizer: PreTrainedTokenizerBase | None) -> TaskSetup:
        prompts = _prompt_format(config, default_template, tokenizer)
        task = _dataset(config, prompts, module.DEFAULT_COLUMNS, module.ANSWER_FORMAT)
        return TaskSetup(task, _rewards(math_answer, prompts), math_answer)

    return build


def _files(config: TaskConfig, tokenizer: PreTrainedTokenizerBase | None) -> TaskSetup:
    prompts = _prompt_format(config, "plain", tokenizer)
    task = _dataset(config, prompts, {"prompt": "prompt", "answer": "answer"}, "raw")
    return TaskSetup(task, _rewards(math_answer, prompts), math_answer)


def _code(config: TaskConfig, tokenizer: PreTrainedTokenizerBase | None) -> TaskSetup:
    """Programs graded in the sandbox: training scores the share of tests passed, accuracy needs all."""
    prompts = _prompt_format(config, "code", tokenizer)
    mapping = dict(config.columns)

    def read(path: str, key: str) -> list:
        return code_examples(load_rows(path, config.split, key), mapping, prompts.render, path)

    examples = read(config.train_path, "task.train_path")
    if config.test_path is None:
        train, test = split_holdout(examples, config.test_size, config.train_path)
    else:
        train, test = examples, read(config.test_path, "task.test_path")[: config.test_size]
    box = config.sandbox
    shared_pool(Limits(timeout_s=box.timeout_s, memory_mb=box.memory_mb), box.workers, box.minimum)  # checked now
    options = dict(limits=Limits(timeout_s=box.timeout_s, memory_mb=box.memory_mb), workers=box.workers,
                   minimum=box.minimum, max_error_share=box.max_error_share, max_error_steps=box.max_error_steps)
    reward = CodeReward(partial_credit=box.partial_credit, **options)
    check = CodeReward(partial_credit=False, name="code_all_passed", **options)
    rewards = [WeightedReward("code", reward, 1.0)]
    if prompts.template == "r1":
        rewards.append(WeightedReward("r1_format", r1_format, FORMAT_WEIGHT))
    return TaskSetup(ListTask(tuple(train), tuple(test)), rewards, check)


def _countdown(config: TaskConfig, tokenizer: PreTrainedTokenizerBase | None) -> TaskSetup:
    prompts = _prompt_format(config, "r1", tokenizer)
    if config.train_path is None:
        low, high = config.countdown_numbers
        task: Task = countdown_task.CountdownTask(prompts.render, low, high, config.countdown_max_number,
                                                  config.test_size)
    else:
        mapping = {**countdown_task.DEFAULT_COLUMNS, **config.columns}
        ask = lambda row: countdown_task.question(list(row[mapping["nums"]]), int(row[mapping["target"]]))
        task = _dataset(config, prompts, {**countdown_task.DEFAULT_COLUMNS, "answer": mapping["target"]}, "raw", ask)
    return TaskSetup(task, _rewards(countdown, prompts), countdown)


TASK_BUILDERS: dict[str, Callable[[TaskConfig, PreTrainedTokenizerBase | None], TaskSetup]] = {
    "arithmetic": _arithmetic,
    "gsm8k": _math_like(gsm8k, "r1"),
    "math": _math_like(math_task, "r1"),
    "files": _files,
    "countdown": _countdown,
    "code": _code,
}


def build_task_setup(config: TaskConfig, tokenizer: PreTrainedTokenizerBase | None = None) -> TaskSetup:
    """The task named by `config.name`, with its default rewards and accuracy check."""
    return TASK_BUILDERS[config.name](config, tokenizer)
