"""The run configuration: typed, frozen pydantic sections, each field documented once, beside it.

Choice fields that name a formula (advantage estimator, KL estimator, ...) are validated against the
registries in `grpo.algo`, so a typo fails before any model loads. Values derived from the config
(world size, effective batch) live in `grpo.trainers.plan`, never here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from grpo.algo import (
    ADVANTAGE_ESTIMATORS,
    KL_ESTIMATORS,
    LOSS_AGGREGATIONS,
    POLICY_LOSSES,
    RATIO_LEVELS,
    Registry,
)

BUILTIN_MODEL = "builtin:arith-warmstart"


class Section(BaseModel):
    """Base of every section: unknown keys are errors and a loaded config cannot be changed."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def _registered(table: Registry, value: str) -> str:
    if value not in table:
        raise ValueError(table.unknown_message(value))
    return value


class LoraSettings(Section):
    """LoRA adapters through peft: only the adapter trains; the reference is the base, adapter off."""

    r: int = Field(16, ge=1, description="Rank of the low-rank update.")
    alpha: float = Field(32.0, gt=0, description="Scale numerator: the update is (alpha / r) * B A.")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the adapter input (0 keeps log-probs exact).")
    target_modules: str | tuple[str, ...] = Field(
        "all-linear", description="Module names to adapt, or all-linear (every linear layer but the head)."
    )


class ModelConfig(Section):
    path: str = Field(BUILTIN_MODEL, description="Hugging Face model directory, or builtin:arith-warmstart.")
    dtype: Literal["float32", "bfloat16", "float16"] = Field(
        "float32", description="Parameter dtype; keep float32 on CPUs (bf16 matmuls are far slower there)."
    )
    device: str = Field("auto", description="auto (cuda when available, else cpu), cpu, cuda or cuda:N.")
    autocast: Literal["auto", "off", "bfloat16", "float16"] = Field(
        "auto", description="Mixed precision for forward passes: auto is bf16 on CUDA devices that support it, "
        "off on CPU; float16 is for GPUs without bf16 (no loss scaling: prefer bfloat16)."
    )
    gradient_checkpointing: bool = Field(False, description="Recompute activations in backward to save memory.")
    lora: LoraSettings | None = Field(None, description="Train LoRA adapters instead of every weight (peft).")


class TaskConfig(Section):
    name: Literal["arithmetic", "gsm8k", "math", "countdown", "files"] = Field(
        "arithmetic", description="Which task supplies prompts and answers (files: your own dataset)."
    )
    min_ops: int = Field(2, ge=1, le=6, description="Fewest operators in an arithmetic expression.")
    max_ops: int = Field(3, ge=1, le=6, description="Most operators in an arithmetic expression.")
    max_operand: int = Field(9, ge=1, le=9, description="Largest operand (single digits).")
    paren_prob: float = Field(0.3, ge=0, le=1, description="Chance that a run of operands is parenthesised.")
    precedence_only: bool = Field(
        True, description="Keep only expressions whose left-to-right reading gives a wrong answer."
    )
    test_size: int = Field(200, ge=1, description="Held-out examples used for evaluation.")
    train_path: str | None = Field(
        None, description="Dataset file (.jsonl, .json, .parquet, .csv) or saved dataset directory."
    )
    test_path: str | None = Field(None, description="Held-out dataset; default: test_size rows held out of train.")
    split: str = Field("train", description="Split to read from a saved DatasetDict directory.")
    columns: dict[str, str] = Field(
        {}, description="Role -> dataset column: prompt, answer, and any other name passed to rewards."
    )
    answer_format: Literal["raw", "gsm8k", "boxed"] | None = Field(
        None, description="How the reference answer is written: raw, gsm8k (#### 42), boxed (MATH); "
        "default follows the task."
    )
    template: Literal["plain", "r1"] | None = Field(
        None, description="Prompt template: plain, or r1 (DeepSeek-R1-Zero <think>/<answer>); default follows "
        "the task."
    )
    chat: bool = Field(False, description="Wrap the prompt in the tokenizer's chat template.")
    system_prompt: str | None = Field(None, description="System message when chat is on (r1: the R1 preamble).")
    countdown_numbers: tuple[int, int] = Field((3, 4), description="Countdown: fewest and most numbers given.")
    countdown_max_number: int = Field(50, ge=2, description="Countdown: largest generated number.")

    @model_validator(mode="after")
    def _ops_ordered(self) -> TaskConfig:
        if self.min_ops > self.max_ops:
            raise ValueError(f"task.min_ops ({self.min_ops}) must be <= task.max_ops ({self.max_ops})")
        if self.name in ("gsm8k", "math", "files") and self.train_path is None:
            raise ValueError(f"task.train_path: task {self.name!r} reads a dataset; set task.train_path=FILE")
        low, high = self.countdown_numbers
        if not 2 <= low <= high <= 6:
            raise ValueError(f"task.countdown_numbers ({low}, {high}) must satisfy 2 <= fewest <= most <= 6")
        return self


class RewardSpec(Section):
    """One reward function of the run and its weight in the total reward."""

    function: str = Field(
        description="A built-in name (exact_answer, math_answer, r1_format, countdown) or module.path:function."
    )
    weight: float = Field(1.0, description="Multiplier in the weighted sum that forms the reward.")
    name: str | None = Field(None, description="Name in the metrics (reward/<name>); default: the function's.")

    @field_validator("function")
    @classmethod
    def _importable_form(cls, value: str) -> str:
        if ":" in value:
            module, _, attribute = value.partition(":")
            if not module or not attribute.isidentifier():
                raise ValueError(f"rewards.function {value!r} must look like package.module:function")
        elif not value.isidentifier():
            raise ValueError(f"rewards.function {value!r} is neither a built-in name nor package.module:function")
        return value


class RolloutConfig(Section):
    group_size: int = Field(8, ge=2, description="G: completions sampled per prompt (GRPO needs >= 2).")
    prompts_per_step: int = Field(32, ge=1, description="B: prompts per training step (N = B*G completions).")
    max_new_tokens: int = Field(24, ge=1, description="Longest completion, EOS included.")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature (the trainer uses the same).")
    top_k: int = Field(0, ge=0, description="Sample from the k most likely tokens; 0 is off.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling mass; 1.0 is off.")


class AlgoConfig(Section):
    advantage: str = Field("grpo", description="Advantage estimator (see grpo.algo.advantages).")
    std: Literal["sample", "population"] = Field(
        "sample", description="Group std convention: sample (DeepSeekMath, torch) or population (numpy)."
    )
    advantage_eps: float = Field(1e-4, ge=0, description="Added to the std before dividing.")
    policy_loss: str = Field("clip", description="Policy loss (see grpo.algo.policy_loss).")
    eps: float = Field(0.2, gt=0, lt=1, description="Clip range of the ratio: [1 - eps, 1 + eps].")
    eps_high: float | None = Field(None, gt=0, description="Upper clip eps if different (DAPO clip-higher).")
    dual_clip: float | None = Field(None, gt=1, description="Dual-clip bound c for negative advantages.")
    ratio_level: str = Field("token", description="Importance ratio per token or per sequence (GSPO).")
    beta: float = Field(0.04, ge=0, description="Weight of the KL penalty to the reference policy.")
    kl_estimator: str = Field("k3", description="KL estimator: k1, k2 or k3 (DeepSeekMath's unbiased).")
    loss_aggregation: str = Field("seq_mean_token_mean", description="How per-token losses are reduced.")
    mu: int = Field(1, ge=1, description="Optimisation passes over each batch of rollouts.")

    _advantage = field_validator("advantage")(lambda v: _registered(ADVANTAGE_ESTIMATORS, v))
    _policy_loss = field_validator("policy_loss")(lambda v: _registered(POLICY_LOSSES, v))
    _ratio_level = field_validator("ratio_level")(lambda v: _registered(RATIO_LEVELS, v))
    _kl = field_validator("kl_estimator")(lambda v: _registered(KL_ESTIMATORS, v))
    _aggregation = field_validator("loss_aggregation")(lambda v: _registered(LOSS_AGGREGATIONS, v))

    @property
    def eps_low(self) -> float:
        return self.eps

    @property
    def clip_high(self) -> float:
        return self.eps if self.eps_high is None else self.eps_high

    @model_validator(mode="after")
    def _clip_ordered(self) -> AlgoConfig:
        if self.eps_high is not None and self.eps_high < self.eps:
            raise ValueError(f"algo.eps_high ({self.eps_high}) must be >= algo.eps ({self.eps})")
        return self


class OptimConfig(Section):
    steps: int = Field(150, ge=1, description="Training steps (one batch of rollouts each).")
    lr: float = Field(3e-4, gt=0, description="AdamW learning rate.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    betas: tuple[float, float] = Field((0.9, 0.99), description="AdamW betas.")
    warmup_steps: int = Field(0, ge=0, description="Linear learning-rate warm-up steps.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient norm clip.")
    micro_batch_size: int = Field(256, ge=1, description="Completions per forward/backward pass.")


class LogConfig(Section):
    output_dir: str = Field("runs", description="Where run directories are created.")
    run_name: str | None = Field(None, description="Run directory name; default is a timestamp.")
    eval_every: int = Field(25, ge=0, description="Greedy held-out evaluation every N steps (0: start/end only).")
    samples_every: int = Field(25, ge=1, description="Write sample completions every N steps.")
    progress: bool = Field(True, description="Show the live progress bar.")
    tensorboard: bool = Field(True, description="Write TensorBoard event files into the run directory.")
    wandb: bool = Field(False, description="Log to Weights & Biases (pip install wandb).")
    wandb_project: str = Field("grpo", description="W&B project name.")
    wandb_mode: Literal["online", "offline"] = Field("online", description="W&B mode; offline syncs later.")
    report: bool = Field(True, description="Write the self-contained HTML report at the end of the run.")


class RunConfig(Section):
    seed: int = Field(0, description="Seeds prompts, sampling and initialisation.")
    model: ModelConfig = ModelConfig()
    task: TaskConfig = TaskConfig()
    rewards: tuple[RewardSpec, ...] = Field(
        (), description="Weighted reward functions; empty: the task's defaults (e.g. answer + R1 format)."
    )
    rollout: RolloutConfig = RolloutConfig()
    algo: AlgoConfig = AlgoConfig()
    optim: OptimConfig = OptimConfig()
    log: LogConfig = LogConfig()


class SFTConfig(Section):
    """`grpo sft`: the supervised warm start that produces the default base policy."""

    seed: int = Field(0, description="Seeds initialisation and the teacher's examples.")
    output: str = Field("runs/sft-warmstart", description="Directory the warm-started model is saved to.")
    steps: int = Field(1000, ge=1, description="Optimiser steps.")
    batch_size: int = Field(64, ge=1, description="Examples per step.")
    lr: float = Field(1e-3, gt=0, description="AdamW learning rate.")
    careless_fraction: float = Field(
        0.5, ge=0, le=1, description="Share of worked examples the teacher reads left to right (2+2*6=4*6=24)."
    )
    max_new_tokens: int = Field(24, ge=1, description="Generation budget of the held-out evaluation.")
    task: TaskConfig = TaskConfig()
