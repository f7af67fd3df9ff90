"""What `grpo explain` reads: the inputs of one GRPO step's loss, logged from inside the step.

At every `log.samples_every`-th step (and step 1) the trainer saves `RUN_DIR/explain/step-NNNNNN.pt`:
the token ids and masks of every completion of the batch, the rewards the advantages were computed
from, the log-probs of the new policy, the old (sampling) policy and the reference, the batch
normaliser, the settings of each formula, and, computed inside the step from the very tensors the
loss used, each group's contribution to the loss of the first optimisation pass. After the update it
adds the updated policy's log-probs of the same tokens, so `explain` can show what a second pass
(`algo.mu` > 1) would see. `grpo.explain` recomputes everything else from these inputs with `grpo.algo`.

The step reaches this module through two calls (`ExplainCapture.capture` from the micro-batch loss,
and `with_explain_log` around the step function), so the trainer core stays free of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from grpo import dist
from grpo.algo import KL_PLACEMENTS, LOSS_AGGREGATIONS, LossNormalizer

EXPLAIN_DIR = "explain"
StepFn = Callable[[list], tuple[dict, list]]


def explain_path(run_dir: Path, step: int) -> Path:
    return run_dir / EXPLAIN_DIR / f"step-{step:06d}.pt"


@dataclass
class ExplainCapture:
    """Collects one step's loss inputs while `armed`; the first optimisation pass only."""

    armed: bool = False
    parts: list[dict[str, torch.Tensor]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    batch: Any = None  # the step's RolloutBatch (the loss mask included), for the after-update log-probs
    pass_done: bool = False

    def capture(self, ctx: Any, scored: Any, rows: slice, logprobs: torch.Tensor, old_logprobs: torch.Tensor,
                ref: torch.Tensor | None, entropy: torch.Tensor, per_token_loss: torch.Tensor,
                norm: LossNormalizer) -> None:
        """Record micro-batch `rows` of the current pass with the per-token loss the step computed from them.

        `ctx` is the TrainState; `scored` has the pass's batch, rewards, valid and advantages (GRPOBatch).
        """
        if not self.armed or self.pass_done:
            return
        algo, batch = ctx.config.algo, scored.batch
        G, mask = batch.group_size, batch.completion_mask[rows]
        self.parts.append({
            "prompt_ids": batch.prompt_ids[rows], "prompt_mask": batch.prompt_mask[rows],
            "completion_ids": batch.completion_ids[rows], "completion_mask": mask,
            "rewards": scored.rewards[rows], "valid": scored.valid[rows],
            "trainer_advantages": scored.advantages[rows], "logprobs": logprobs.detach(),
            "old_logprobs": old_logprobs.detach(), "entropy": entropy.detach(),
            "ref_logprobs": ref[rows] if ref is not None else torch.zeros_like(logprobs.detach()),
            "per_token_loss": per_token_loss.detach(),
        })
        if rows.stop == batch.num_completions:
            self.pass_done, self.batch = True, batch
            self.settings = {
                "group_size": G, "advantage": algo.advantage, "std": algo.std, "advantage_eps": algo.advantage_eps,
                "policy_loss": algo.policy_loss, "eps_low": algo.eps_low, "eps_high": algo.clip_high,
                "dual_clip": algo.dual_clip, "ratio_level": algo.ratio_level, "kl_estimator": algo.kl_estimator,
                "kl_weight": KL_PLACEMENTS.get(ctx.config.kl_placement)(algo.beta).in_loss if ref is not None else 0.0,
                "beta": algo.beta, "entropy_coef": algo.entropy_coef, "loss_aggregation": algo.loss_aggregation,
                "mu": algo.mu, "temperature": ctx.config.rollout.temperature,
                "norm": {"num_sequences": norm.num_sequences, "num_tokens": norm.num_tokens,
                         "max_completion_length": norm.max_completion_length},
            }

    def take(self) -> dict[str, Any] | None:
        """The finished record (tensors concatenated over micro-batches), or None; disarms and clears.

        It holds each group's contribution to the pass's loss: the configured aggregation of the group's
        rows of the step's own per-token loss, under the batch normaliser (for every aggregation but
        bnpo, whose weights depend on the micro-batch, the groups' contributions sum to the loss)."""
        record = None
        if self.pass_done:
            record = {key: torch.cat([part[key] for part in self.parts]).cpu() for key in self.parts[0]}
            record["settings"] = self.settings
            G, norm = self.settings["group_size"], LossNormalizer(**self.settings["norm"])
            aggregate = LOSS_AGGREGATIONS.get(self.settings["loss_aggregation"])
            losses, mask = record.pop("per_token_loss"), record["completion_mask"]
            record["contribution"] = torch.stack([aggregate(losses[g : g + G], mask[g : g + G], norm)
                                                  for g in range(0, losses.shape[0], G)])
        self.armed, self.pass_done, self.parts, self.batch = False, False, [], None
        return record


def token_strings(tokenizer: Any, ids: list[int]) -> list[str]:
    """Each id's token string; ids past the tokenizer's vocabulary (a model's padded embedding rows,
    which an untrained model can sample) read `<id N>` instead of None."""
    return [token if token is not None else f"<id {i}>" for i, token in zip(ids, tokenizer.convert_ids_to_tokens(ids))]


def with_explain_log(step: StepFn, ctx: Any, run_dir: Path | None, every: int, first_step: int) -> StepFn:
    """Arm `ctx.explain` (`ctx`: the run's TrainState) before every `every`-th step (and step 1) and
    save what it captured after it.

    Steps are counted from `first_step` (the loop's first step, later than 1 after a resume). Every
    rank captures and recomputes (the log-prob pass is a collective under several ranks); only the
    main rank writes, and only its own rows.
    """
    if run_dir is None:
        return step
    from grpo.trainers.logprob_passes import policy_logprobs

    counter = iter(range(first_step, 1 << 62))
    ctx.explain = ExplainCapture()

    def logging_step(examples: list) -> tuple[dict, list]:
        number = next(counter)
        ctx.explain.armed = number % every == 0 or number == 1
        stats, samples = step(examples)
        batch = ctx.explain.batch
        record = ctx.explain.take()
        if record is not None:
            temperature = record["settings"]["temperature"]
            record["updated_logprobs"] = policy_logprobs(ctx, ctx.policy, batch, temperature).cpu()
            record["prompts"] = [ctx.tokenizer.decode(row[m].tolist(), skip_special_tokens=True)
                                 for row, m in zip(record["prompt_ids"], record["prompt_mask"])]
            record["completion_tokens"] = [token_strings(ctx.tokenizer, row.tolist())
                                           for row in record["completion_ids"]]
            record["step"] = number
            if dist.is_main():
                path = explain_path(run_dir, number)
                path.parent.mkdir(exist_ok=True)
                torch.save(record, path)
        return stats, samples

    return logging_step
