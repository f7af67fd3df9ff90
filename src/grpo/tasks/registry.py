"""Which task a config names: its examples, its default rewards and its accuracy check.

Each task name maps to a builder; the trainer never branches on the name. A builder receives the
task section and the tokenizer (for chat templates) and returns a TaskSetup.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
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
from grpo.tasks.api import Example, Task
from grpo.tasks.arithmetic import ArithmeticTask
from grpo.tasks.code import code_spec, prompt_column
from grpo.tasks.files import ListTask, split_holdout
from grpo.tasks.fn_examples import FnFromExamplesTask
from grpo.tasks.prompts import PromptFormat
from grpo.tasks.validate import (
    Field,
    PromptBudget,
    RowSpec,
    answer_problem,
    answer_text,
    as_int,
    check_file,
    integer_list_problem,
    integer_problem,
    present,
    raise_problems,
    text_problem,
    warn_duplicates,
)

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


TaskBuilder = Callable[[TaskConfig, "PreTrainedTokenizerBase | None", "PromptBudget | None"], TaskSetup]


def _prompt_format(config: TaskConfig, default: str, tokenizer: PreTrainedTokenizerBase | None) -> PromptFormat:
    return PromptFormat(config.template or default, config.chat, config.system_prompt, tokenizer)


def _rewards(answer: RewardCallable, prompts: PromptFormat) -> list[WeightedReward]:
    rewards = [WeightedReward(answer.__name__, answer, 1.0)]
    if prompts.template == "r1":
        rewards.append(WeightedReward("r1_format", r1_format, FORMAT_WEIGHT))
    return rewards


def _arithmetic(config: TaskConfig, tokenizer: PreTrainedTokenizerBase | None, budget: PromptBudget | None
                ) -> TaskSetup:
    task = ArithmeticTask(config.min_ops, config.max_ops, config.max_operand, config.paren_prob,
                          config.precedence_only, config.test_size)
    return TaskSetup(task, [WeightedReward("exact_answer", exact_answer, 1.0)], exact_answer)


def _reference(parse: Callable[[str], str], column: str) -> Callable[[object], str]:
    """The reference answer from a checked answer value; a parse failure names the column."""

    def reference(value: object) -> str:
        try:
            answer = parse(answer_text(value))
        except ValueError as error:
            raise ValueError(f"column '{column}' (answer): {error}") from None
        if not answer.strip():
            raise ValueError(f"column '{column}' (answer) gives an empty reference answer")
        return answer

    return reference


# Mapped roles beyond a task's own that must hold more than "any value": a code prefix is text.
EXTRA_CHECKS = {"code_prefix": text_problem}


def _extras(mapping: Mapping[str, str], taken: tuple[str, ...]) -> tuple[Field, ...]:
    """The mapped roles beyond `taken`, handed to reward functions as columns of the same name."""
    return tuple(Field(role, column, EXTRA_CHECKS.get(role, present)) for role, column in mapping.items()
                 if role not in taken)


def _question_spec(config: TaskConfig, prompts: PromptFormat, defaults: dict[str, str], answer_format: str) -> RowSpec:
    """Rows with a prompt column (text) and an answer column (text or number) parsed by the answer format."""
    mapping = {**defaults, **config.columns}
    if "prompt" not in mapping or "answer" not in mapping:
        raise UserError("task.columns: map the prompt and answer roles to columns, e.g. "
                        "task.columns={prompt: question, answer: solution}")
    extras = _extras(mapping, ("prompt", "answer"))
    reference = _reference(REFERENCE_PARSERS[config.answer_format or answer_format], mapping["answer"])
    fields = (Field("prompt", mapping["prompt"], text_problem), Field("answer", mapping["answer"], answer_problem))

    def build(row: Mapping[str, object]) -> Example:
        return Example(prompts.render(str(row[mapping["prompt"]])), reference(row[mapping["answer"]]),
                       {f.role: row[f.column] for f in extras})

    return RowSpec(fields + extras, build)


def _dataset(config: TaskConfig, spec: RowSpec, budget: PromptBudget | None) -> ListTask:
    """Examples from `task.train_path` (and `task.test_path`): every row of both checked in one pass."""
    problems: list[str] = []
    train = check_file(config.train_path, "task.train_path", config.split, spec, budget, problems)
    test = (check_file(config.test_path, "task.test_path", config.split, spec, budget, problems)
            if config.test_path is not None else None)
    raise_problems(problems)
    if test is None:
        train_examples, test_examples = split_holdout(train.examples, config.test_size, config.train_path)
    else:
        train_examples, test_examples = train.examples, test.examples[: config.test_size]
    warn_duplicates(train_examples, test_examples, config.train_path, config.test_path)
    return ListTask(tuple(train_examples), tuple(test_examples))


def _math_like(module: object, default_template: str) -> TaskBuilder:
    def build(config: TaskConfig, tokenizer: PreTrainedTokenizerBase | None, budget: PromptBudget | None) -> TaskSetup:
        prompts = _prompt_format(config, default_template, tokenizer)
        task = _dataset(config, _question_spec(config, prompts, module.DEFAULT_COLUMNS, module.ANSWER_FORMAT), budget)
        return TaskSetup(task, _rewards(math_answer, prompts), math_answer)

    return build


def _files(config: TaskConfig, tokenizer: PreTrainedTokenizerBase | None, budget: PromptBudget | None) -> TaskSetup:
    prompts = _prompt_format(config, "plain", tokenizer)
    task = _dataset(config, _question_spec(config, prompts, {"prompt": "prompt", "answer": "answer"}, "raw"), budget)
    return TaskSetup(task, _rewards(math_answer, prompts), math_answer)


def _code_setup(config: TaskConfig, task: Task, r1_format_reward: bool) -> TaskSetup:
    """`task` graded in the sandbox: training scores the share of tests passed, accuracy needs all."""
    box = config.sandbox
    shared_pool(Limits(timeout_s=box.timeout_s, memory_mb=box.memory_mb), box.workers, box.minimum)  # checked now
    options = dict(limits=Limits(timeout_s=box.timeout_s, memory_mb=box.memory_mb), workers=box.workers,
                   minimum=box.minimum, max_error_share=box.max_error_share, max_error_steps=box.max_error_steps)
    reward = CodeReward(partial_credit=box.partial_credit, **options)
    check = CodeReward(partial_credit=False, name="code_all_passed", **options)
    rewards = [WeightedReward("code", reward, 1.0)]
    if r1_format_reward:
        rewards.append(WeightedReward("r1_format", r1_format, FORMAT_WEIGHT))
    return TaskSetup(task, rewards, check)


def _code(config: TaskConfig, tokenizer: PreTrainedTokenizerBase | None, budget: PromptBudget | None) -> TaskSetup:
    """Programs from a dataset file, graded in the sandbox."""
    prompts = _prompt_format(config, "code", tokenizer)
    column = prompt_column(config.train_path, config.split, config.columns)
    task = _dataset(config, code_spec(column, prompts.render, _extras(config.columns, ("prompt",))), budget)
    return _code_setup(config, task, prompts.template == "r1")


def _fn_from_examples(config: TaskConfig, tokenizer: PreTrainedTokenizerBase | None, budget: PromptBudget | None
                      ) -> TaskSetup:
    """The built-in code task: one-line functions from three of their values, graded in the sandbox."""
    return _code_setup(config, FnFromExamplesTask(config.test_size), False)


def _countdown_spec(config: TaskConfig, prompts: PromptFormat) -> RowSpec:
    """Rows with a list of integers (nums) and an integer target; the answer is the target."""
    mapping = {**countdown_task.DEFAULT_COLUMNS, **config.columns}
    nums, target = mapping["nums"], mapping["target"]
    extras = _extras(mapping, ("nums", "target", "prompt", "answer"))
    fields = (Field("nums", nums, integer_list_problem), Field("target", target, integer_problem))

    def build(row: Mapping[str, object]) -> Example:
        goal = as_int(row[target])
        question = countdown_task.question([as_int(n) for n in row[nums]], goal)
        columns = {"nums": row[nums], "target": row[target], **{f.role: row[f.column] for f in extras}}
        return Example(prompts.render(question), str(goal), columns)

    return RowSpec(fields + extras, build)


def _countdown(config: TaskConfig, tokenizer: PreTrainedTokenizerBase | None, budget: PromptBudget | None) -> TaskSetup:
    prompts = _prompt_format(config, "r1", tokenizer)
    if config.train_path is None:
        low, high = config.countdown_numbers
        task: Task = countdown_task.CountdownTask(prompts.render, low, high, config.countdown_max_number,
                                                  config.test_size)
    else:
        task = _dataset(config, _countdown_spec(config, prompts), budget)
    return TaskSetup(task, _rewards(countdown, prompts), countdown)


TASK_BUILDERS: dict[str, TaskBuilder] = {
    "arithmetic": _arithmetic,
    "gsm8k": _math_like(gsm8k, "r1"),
    "math": _math_like(math_task, "r1"),
    "files": _files,
    "countdown": _countdown,
    "code": _code,
    "fn_from_examples": _fn_from_examples,
}


def build_task_setup(config: TaskConfig, tokenizer: PreTrainedTokenizerBase | None = None,
                     budget: PromptBudget | None = None) -> TaskSetup:
    """The task named by `config.name`, with its default rewards and accuracy check.

    A file-backed task reads and checks every row of its files first and raises one `DatasetError`
    listing every problem; with `budget`, prompts too long for the model are refused (or dropped).
    """
    return TASK_BUILDERS[config.name](config, tokenizer, budget)
