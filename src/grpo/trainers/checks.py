"""Fail-loud checks: before the first step (config and task) and on every step (the run's health).

Each problem becomes either a `UserError` (the run cannot be right) or a one-line warning that says
what to change (the run is legal but is probably wasting its compute). Warnings go to this
module's `logger`, on the main rank only.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from transformers import AutoConfig, PreTrainedTokenizerBase

from grpo import dist
from grpo.config import RunConfig
from grpo.config.schema import GuardsConfig
from grpo.errors import UserError
from grpo.models.load import resolve_model_path
from grpo.tasks.api import Example, Task
from grpo.tasks.pairs import PairLimit, check_pairs
from grpo.tasks.registry import TaskSetup, build_task_setup
from grpo.tasks.validate import DatasetError, PromptBudget, raise_problems

logger = logging.getLogger("grpo.checks")


class Diverged(UserError):
    """Too many updates in a row were skipped because the loss or the gradient norm was not finite."""


def warn(message: str) -> None:
    if dist.is_main():
        logger.warning("warning: %s", message)


def nearest_multiples(value: int, divisor: int) -> tuple[int, int]:
    """The multiples of `divisor` just below (at least `divisor`) and just above `value`."""
    below = max(divisor, value // divisor * divisor)
    return below, (value // divisor + 1) * divisor


def group_size_problem(config: RunConfig) -> str | None:
    """Micro-batches should hold whole groups when the batch is split; if not, say which sizes would.

    A step's batch is set in prompts (B), so its N = B*G completions always hold whole groups; the
    one size set in completions is `optim.micro_batch_size`. The loss is normalised over the whole
    batch, so a split group does not change the result here: a warning, not an error.
    """
    G, size = config.rollout.group_size, config.optim.micro_batch_size
    N = config.rollout.prompts_per_step * G
    if size >= N or size % G == 0:
        return None
    below, above = nearest_multiples(size, G)
    return (f"optim.micro_batch_size ({size}) is not a multiple of rollout.group_size ({G}), so micro-batches "
            f"split groups; nearest valid settings: optim.micro_batch_size={below} or {above}")


def model_context(config: RunConfig) -> int | None:
    """The model's context length (max_position_embeddings) from its config.json alone, or None."""
    return getattr(AutoConfig.from_pretrained(resolve_model_path(config.model.path)), "max_position_embeddings", None)


def model_limits(config: RunConfig) -> None:
    """Completions must fit the model's positions; read from config.json alone, before any weights load."""
    limit = model_context(config)
    if limit is not None and config.rollout.max_new_tokens >= limit:
        raise UserError(f"rollout.max_new_tokens ({config.rollout.max_new_tokens}) must be below the model's "
                        f"max_position_embeddings ({limit})")


def prompt_budget(config: RunConfig, tokenizer: PreTrainedTokenizerBase | None,
                  context: int | None) -> PromptBudget | None:
    """How long a templated prompt may be: the context left after rollout.max_new_tokens, or
    task.max_prompt_tokens when lower (None when neither is known or there is no tokenizer)."""
    new_tokens, limits = config.rollout.max_new_tokens, []
    if context is not None and new_tokens < context:  # otherwise model_limits refuses the config
        limits.append((context - new_tokens, f"model context {context} - rollout.max_new_tokens {new_tokens}"))
    if config.task.max_prompt_tokens is not None:
        limits.append((config.task.max_prompt_tokens, "task.max_prompt_tokens"))
    if not limits or tokenizer is None:
        return None
    max_tokens, reason = min(limits)
    count = lambda text: len(tokenizer(text, verbose=False)["input_ids"])
    return PromptBudget(count, max_tokens, reason, config.task.overlong_prompts == "drop")


def pair_limit(tokenizer: PreTrainedTokenizerBase | None, context: int | None) -> PairLimit | None:
    """Preference pairs must fit the context: prompt + the longer response + EOS, as DPO encodes them."""
    if tokenizer is None or context is None:
        return None
    count = lambda text, special: len(tokenizer(text, add_special_tokens=special, verbose=False)["input_ids"])
    length = lambda pair: count(pair["prompt"], True) + max(count(pair["chosen"], False),
                                                            count(pair["rejected"], False)) + 1
    return PairLimit(length, context, f"model context {context}")


def checked_task_setup(config: RunConfig, tokenizer: PreTrainedTokenizerBase | None) -> TaskSetup:
    """The configured task after one pass over every data file the run reads (task.train_path,
    task.test_path, dpo.data): all problems are raised together as one `DatasetError`, before any
    weights load or any run directory exists."""
    reads_files = config.task.train_path is not None or config.dpo.data is not None
    context = model_context(config) if reads_files else None
    problems: list[str] = []
    if config.dpo.data is not None:
        check_pairs(config.dpo.data, pair_limit(tokenizer, context), problems)
    try:
        setup = build_task_setup(config.task, tokenizer, prompt_budget(config, tokenizer, context))
    except DatasetError as error:
        raise DatasetError(error.problems + problems) from None
    raise_problems(problems)
    return setup


def preflight(config: RunConfig, task: Task) -> list[Example]:
    """Checks that need no weights: the task can produce both splits (returns the held-out examples),
    completions fit the model, and micro-batches hold whole groups."""
    try:
        examples = task.test_examples()
        task.sample(random.Random(config.seed), "train")
    except ValueError as error:
        raise UserError(f"task: {error}") from None
    if not examples:
        raise UserError("task: the held-out split is empty, so accuracy cannot be measured")
    model_limits(config)
    problem = group_size_problem(config)
    if problem is not None:
        warn(problem)
    return examples


@dataclass
class StepWatch:
    """Per-step health checks: non-finite updates, truncation, zero reward variance, log-prob agreement.

    Its counters are part of the checkpoint, so a resumed run warns and stops exactly as the
    uninterrupted one would.
    """

    guards: GuardsConfig
    max_new_tokens: int
    report: Callable[[str], None] = field(default=warn)
    consecutive_skips: int = 0
    total_skips: int = 0
    zero_variance_run: int = 0
    truncation_warned: bool = False
    rejection_warned: bool = False

    def state_dict(self) -> dict[str, object]:
        return {key: value for key, value in asdict(self).items() if key not in ("guards", "max_new_tokens", "report")}

    def load_state_dict(self, state: dict[str, object]) -> None:
        for key, value in state.items():
            setattr(self, key, value)

    def observe(self, step: int, values: dict[str, float]) -> int | None:
        """Check one step's metrics (adds `skipped_updates_total`); returns the first step of a skip
        streak that reached `guards.max_consecutive_skips`, else None."""
        self._check_logprobs(step, values)
        self._check_truncation(step, values)
        self._check_variance(step, values)
        self._check_rejected(step, values)
        return self._check_skips(step, values)

    def _check_skips(self, step: int, values: dict[str, float]) -> int | None:
        if values.get("skipped_update", 0.0) > 0:
            self.consecutive_skips += 1
            self.total_skips += 1
            limit = self.guards.max_consecutive_skips
            self.report(f"step {step}: update skipped because the loss or gradient norm is not finite "
                        f"({self.consecutive_skips} in a row, {self.total_skips} in total; the run stops after "
                        f"guards.max_consecutive_skips={limit} in a row)")
        else:
            self.consecutive_skips = 0
        values["skipped_updates_total"] = float(self.total_skips)
        if self.consecutive_skips >= self.guards.max_consecutive_skips:
            return step - self.consecutive_skips + 1
        return None

    def _check_truncation(self, step: int, values: dict[str, float]) -> None:
        fraction = values.get("truncated_fraction", 0.0)
        if fraction > self.guards.truncation_warn and not self.truncation_warned:
            self.truncation_warned = True
            self.report(f"step {step}: {fraction:.0%} of completions hit rollout.max_new_tokens="
                        f"{self.max_new_tokens} without an EOS and score as unfinished; raise "
                        f"rollout.max_new_tokens (reported once; threshold guards.truncation_warn="
                        f"{self.guards.truncation_warn:g})")

    def _check_variance(self, step: int, values: dict[str, float]) -> None:
        if values.get("zero_std_groups", 0.0) < 1.0:
            self.zero_variance_run = 0
            return
        self.zero_variance_run += 1
        if self.zero_variance_run == self.guards.zero_variance_steps:
            first = step - self.zero_variance_run + 1
            self.report(f"steps {first}-{step}: every group had identical rewards, so every advantage is 0 "
                        f"and nothing is learned; make the task match the model (neither always right nor "
                        f"always wrong), or raise rollout.group_size or rollout.temperature")

    def _check_rejected(self, step: int, values: dict[str, float]) -> None:
        rejected = values.get("reward_rejected", 0.0)
        if rejected > 0 and not self.rejection_warned:
            self.rejection_warned = True
            self.report(f"step {step}: {rejected:g} rewards were NaN, infinite or outside [guards.reward_min, "
                        f"guards.reward_max]; they are excluded from the advantages and counted in reward_rejected "
                        f"(reported once)")

    def _check_logprobs(self, step: int, values: dict[str, float]) -> None:
        gap = values.get("logprob_gap_max")
        if gap is None or gap <= self.guards.logprob_tolerance:
            return
        self.report(f"step {step}: the trainer's log-probs of the sampled tokens differ from the sampler's by up "
                    f"to {gap:.3g} (guards.logprob_tolerance={self.guards.logprob_tolerance:g}); importance "
                    f"ratios span [{values.get('logprob_ratio_min', 0.0):.4f}, "
                    f"{values.get('logprob_ratio_max', 0.0):.4f}] instead of 1; use model.dtype=float32 or "
                    f"check that sampling and training see the same model and temperature")
