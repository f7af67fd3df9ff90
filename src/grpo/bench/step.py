"""`grpo bench step`: seconds per GRPO step of this trainer against TRL's `GRPOTrainer`.

Same model directory, prompt distribution (the arithmetic task's training split), reward (exact
final answer), and hyperparameters: B prompts x G completions, max_new_tokens, temperature 1, no
top-k/top-p, beta (k3 KL to a frozen reference), clip eps 0.2, one optimisation pass (mu = 1),
AdamW at a constant learning rate, gradient clipping at 1.0, the per-sequence-then-batch loss
(TRL's loss_type="grpo") and group std scaling. Rounds alternate: `steps` steps of ours, then
`steps` steps of TRL, and so on; per-step times come from inside each loop (TRL's through a
callback), so set-up is not counted. Each step's time is the whole `grpo_step` (with `--backend vllm`
the weight sync and its check included), at least 20 timed steps a side by default. `--curve`
instead runs both continuously for that many steps and reports the mean reward of each step, to
check that both learn alike.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import torch

import grpo.trainers.accumulate as accumulate_module
import grpo.trainers.grpo as grpo_module
import grpo.trainers.rollout_phase as rollout_module
from grpo.bench.common import arithmetic_examples, emit, machine, model_dir
from grpo.bench.options import threads
from grpo.config import load_config
from grpo.errors import UserError
from grpo.models.load import frozen_copy, load_policy, load_tokenizer
from grpo.rewards import exact_answer
from grpo.rewards.combine import single
from grpo.trainers.state import build_state

# (module, function name) -> phase: each function is looked up by name in the module that calls it.
PHASES = {(rollout_module, "sample"): "generation", (rollout_module, "score"): "scoring",
          (grpo_module, "reference_logprobs"): "logprobs", (grpo_module, "grpo_update"): "policy_pass",
          (accumulate_module, "apply_update"): "optimizer"}


class PhaseClock:
    """Seconds spent in each phase of the current step, gathered by wrapping the phase functions."""

    def __init__(self) -> None:
        self.current: dict[str, float] = defaultdict(float)

    def wrap(self, name: str, function: Callable) -> Callable:
        def timed(*args: object, **kwargs: object) -> object:
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.current[name] += time.perf_counter() - start

        return timed

    def take(self) -> dict[str, float]:
        phases, self.current = dict(self.current), defaultdict(float)
        return phases


def _our_trainer(path: Path, args: argparse.Namespace, clock: PhaseClock) -> Callable[[list], dict]:
    """A step function over our GRPO step with its phases timed; returns the step's stats."""
    config = load_config(overrides=[
        f"rollout.group_size={args.group_size}", f"rollout.prompts_per_step={args.prompts}",
        f"rollout.max_new_tokens={args.max_new_tokens}", f"algo.beta={args.beta}", f"optim.lr={args.lr}",
        f"rollout.backend={args.backend}",
        "algo.dynamic_sampling=false",  # one batch of B x G samples per step, as TRL draws (the default redraws)
    ])
    policy = load_policy(path, "float32", torch.device("cpu"))
    reference = frozen_copy(policy) if args.beta > 0 else None
    state = build_state(config, policy, reference, load_tokenizer(path), torch.Generator().manual_seed(0),
                        single(exact_answer))

    def step(examples: list) -> dict:
        # The phase functions are swapped for timed wrappers during the step only, so grpo_step
        # itself runs unchanged and nothing stays patched afterwards.
        originals = {key: getattr(*key) for key in PHASES}
        for (module, name), function in originals.items():
            setattr(module, name, clock.wrap(PHASES[module, name], function))
        try:
            return grpo_module.grpo_step(state, examples)[0]
        finally:
            for (module, name), function in originals.items():
                setattr(module, name, function)

    return step


def trl_trainer(path: Path, args: argparse.Namespace, output: Path, steps: int, clock: PhaseClock,
                **extra: object) -> object:
    """TRL's GRPOTrainer with the same settings, its generation and reward phases timed; `extra` adds
    GRPOConfig fields (benchmarks/trl_vllm_probe.py: TRL's vLLM mode)."""
    try:
        from datasets import Dataset
        from trl import GRPOConfig, GRPOTrainer
    except ImportError as error:
        hint = "pip install 'grpo[bench]' or pass --no-trl"
        raise UserError(f"the TRL peer needs the bench extra ({error}); {hint}") from error

    def reward(completions: list[str], answer: list[str], **_: object) -> list[float]:
        return [0.0 if value is None else value for value in exact_answer(completions, answer=answer)]

    examples = arithmetic_examples(args.prompts * (steps + 2), seed=1)
    dataset = Dataset.from_list([{"prompt": e.prompt, "answer": e.answer} for e in examples])
    config = GRPOConfig(
        output_dir=str(output), per_device_train_batch_size=args.prompts * args.group_size,
        num_generations=args.group_size, max_completion_length=args.max_new_tokens, temperature=1.0, top_p=1.0,
        top_k=0, beta=args.beta, epsilon=0.2, learning_rate=args.lr, lr_scheduler_type="constant", warmup_steps=0,
        adam_beta1=0.9, adam_beta2=0.99, weight_decay=0.0, max_grad_norm=1.0, num_iterations=1, loss_type="grpo",
        scale_rewards="group", max_steps=steps, logging_steps=1, report_to="none", use_cpu=True,
        save_strategy="no", seed=0, bf16=False, disable_tqdm=True, **extra,
    )
    tokenizer = load_tokenizer(path)
    trainer = GRPOTrainer(model=str(path), reward_funcs=reward, args=config, train_dataset=dataset,
                          processing_class=tokenizer)
    trainer._generate = clock.wrap("generation", trainer._generate)
    trainer._calculate_rewards = clock.wrap("scoring", trainer._calculate_rewards)
    return trainer


def trl_step_callback(clock: PhaseClock, steps: list[dict], rewards: list[float]) -> object:
    """A TrainerCallback recording each step's wall time, phase split and logged mean reward."""
    from transformers import TrainerCallback

    class StepTimes(TrainerCallback):
        def on_step_begin(self, *args: object, **kwargs: object) -> None:
            self.start = time.perf_counter()
            clock.take()

        def on_step_end(self, *args: object, **kwargs: object) -> None:
            steps.append({"step_s": time.perf_counter() - self.start, **clock.take()})

        def on_log(self, args: object, state: object, control: object, logs: dict | None = None, **_: object) -> None:
            if logs and "reward" in logs:
                rewards.append(float(logs["reward"]))

    return StepTimes()


def _summary(steps: list[dict]) -> dict[str, float]:
    """Median seconds per step and the median share of each phase."""
    summary = {"s_per_step": statistics.median(s["step_s"] for s in steps), "steps_timed": len(steps)}
    if any("sampling_draws" in s for s in steps):  # prompt batches sampled per step: 1 unless something redraws
        summary["sampling_draws_max"] = max(s.get("sampling_draws", 1.0) for s in steps)
    phases = sorted({key for s in steps for key in s if key not in ("step_s", "sampling_draws")})
    for phase in phases:
        summary[f"{phase}_s"] = statistics.median(s.get(phase, 0.0) for s in steps)
    if "policy_pass_s" in summary:  # the policy pass includes the optimizer update; split them
        summary["forward_backward_s"] = summary.pop("policy_pass_s") - summary.get("optimizer_s", 0.0)
    return summary


def run(args: argparse.Namespace) -> dict:
    """Alternate rounds of our steps and TRL's steps; return the record."""
    torch.set_num_threads(threads(args))
    torch.manual_seed(0)
    start = machine()
    ours_steps: list[dict] = []
    trl_steps: list[dict] = []
    ours_rewards: list[float] = []
    trl_rewards: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = model_dir(args.model, Path(tmp))
        clock = PhaseClock()
        steps_per_round = args.curve or args.steps
        ours = _our_trainer(path, args, clock)
        trl = trl_trainer(path, args, Path(tmp) / "trl", steps_per_round, clock) if not args.no_trl else None
        if trl is not None:
            trl.add_callback(trl_step_callback(clock, trl_steps, trl_rewards))
        prompts = iter(arithmetic_examples(args.prompts * steps_per_round * (args.rounds + 1), seed=1))
        for _ in range(1 if args.curve else args.rounds + 1):
            for _ in range(steps_per_round):
                examples = [next(prompts) for _ in range(args.prompts)]
                clock.take()
                tick = time.perf_counter()
                stats = ours(examples)
                ours_steps.append({"step_s": time.perf_counter() - tick, **clock.take(),
                                   "sampling_draws": float(stats.get("sampling_draws", 1.0))})
                ours_rewards.append(float(stats["reward_mean"]))
            if trl is not None:
                with contextlib.redirect_stdout(io.StringIO()):  # TRL prints its logs; keep one JSON line
                    trl.train()
    warm = 0 if args.curve else steps_per_round  # the first round of each is a warm-up
    record: dict = {"benchmark": "step", "model": args.model, "backend": args.backend, "prompts": args.prompts,
                    "group_size": args.group_size,
                    "max_new_tokens": args.max_new_tokens, "beta": args.beta, "lr": args.lr, "machine": start,
                    "grpo": _summary(ours_steps[warm:])}
    if trl_steps:
        record["trl"] = _summary(trl_steps[warm:])
        record["ratio_steps_per_s_vs_trl"] = record["trl"]["s_per_step"] / record["grpo"]["s_per_step"]
    if args.curve:
        record["reward_curve"] = {"grpo": ours_rewards, "trl": trl_rewards}
        half = len(ours_rewards) // 2
        record["reward_second_half_mean"] = {"grpo": statistics.fmean(ours_rewards[half:]),
                                             "trl": statistics.fmean(trl_rewards[half:]) if trl_rewards else None}
    return record


def main(args: argparse.Namespace) -> int:
    emit(run(args))
    return 0
