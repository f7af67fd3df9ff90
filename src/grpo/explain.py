"""`grpo explain RUN_DIR [--step N] [--group K]`: one group of a real GRPO step, worked through by hand.

The trainer logged, inside the step, the inputs of the loss (`grpo.trainers.explain_log`): token ids
and masks, rewards, the new, old and reference token log-probs, the batch normaliser, and each
group's contribution to the loss. Everything shown here is recomputed from those inputs with the
formulas of `grpo.algo` (the advantage estimator, ratio, clipped policy loss, KL estimator and loss
aggregation the run was configured with), never read back from numbers the trainer derived, and
the recomputed contribution is checked against the one the trainer logged.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from grpo.algo import (
    ADVANTAGE_ESTIMATORS,
    KL_ESTIMATORS,
    LOSS_AGGREGATIONS,
    POLICY_LOSSES,
    RATIO_LEVELS,
    AdvantageInputs,
    LossNormalizer,
)
from grpo.errors import UserError
from grpo.trainers.explain_log import EXPLAIN_DIR, explain_path

COLUMNS = (
    ("logp_new", "log pi_theta(token): the policy being trained, where the gradient flows"),
    ("logp_old", "log pi_old(token): the policy that sampled the completion"),
    ("ratio", "pi_theta / pi_old = exp(logp_new - logp_old), the importance ratio"),
    ("ratio*A", "the unclipped surrogate term"),
    ("clip*A", "clip(ratio, 1 - eps_low, 1 + eps_high) * A, the clipped term"),
    ("min", "which of the two the min picked (clip only when it is strictly smaller)"),
    ("logp_ref", "log pi_ref(token): the frozen reference policy"),
    ("kl", "the per-token KL estimate to the reference (algo.kl_estimator)"),
    ("loss", "the per-token loss: -min(...) + KL weight * kl - entropy bonus"),
)
ZERO_SUM_NOTE = (
    "(With ratios of 1 a group's advantages sum to 0, so under a per-completion mean its policy term is about 0\n"
    "and what remains is the KL term; the loss's value is small but its gradient, sum_i A_i grad log pi(o_i), is not.)"
)
MU_ONE_NOTE = (
    "Why every ratio is exactly 1 and the clip never fires here: with algo.mu = 1 the batch is used for one\n"
    "update only, so the policy that sampled it (pi_old) is the policy being trained: the trainer takes\n"
    "logp_old = logp_new.detach(), and ratio = exp(0) = 1 on every token. The clip only acts when the ratio\n"
    "leaves [1 - eps_low, 1 + eps_high], which it cannot, so the loss is the plain policy gradient: the\n"
    "gradient of ratio * A is A * grad log pi_theta (the ratio's gradient at 1). The clip matters from a\n"
    "second pass over the same rollouts on (algo.mu > 1): below is this group as that pass would see it, with\n"
    "the policy after this step's update as pi_theta and the same pi_old."
)


@dataclass(frozen=True)
class PassView:
    """One optimisation pass over the group: per-token terms (G, T) and the group's loss contribution."""

    logprobs: torch.Tensor
    kl: torch.Tensor
    ratio: torch.Tensor
    unclipped: torch.Tensor
    clipped: torch.Tensor
    per_token_loss: torch.Tensor
    per_completion: torch.Tensor  # (G,) each completion's contribution under the batch normaliser
    contribution: float
    clip_fraction: float


@dataclass(frozen=True)
class GroupView:
    """One group of a logged step, recomputed from the logged inputs."""

    step: int
    group: int
    groups: int
    prompt: str
    tokens: list[list[str]]  # G lists of completion tokens (masked positions dropped)
    rewards: torch.Tensor  # (G,)
    valid: torch.Tensor  # (G,)
    advantages: torch.Tensor  # (G,)
    mean: float
    std: float
    old: torch.Tensor  # (G, T)
    ref: torch.Tensor  # (G, T)
    mask: torch.Tensor  # (G, T)
    first: PassView
    second: PassView
    logged_contribution: float
    settings: dict[str, Any]


def load_record(run_dir: Path, step: int | None) -> dict[str, Any]:
    """The explain record of `step` (default: the latest logged) in `run_dir`."""
    folder = run_dir / EXPLAIN_DIR
    steps = sorted(int(path.stem.split("-")[1]) for path in folder.glob("step-*.pt")) if folder.is_dir() else []
    if not steps:
        raise UserError(f"explain: {run_dir} has no {EXPLAIN_DIR}/ records; they are written by GRPO runs at "
                        "step 1 and every log.samples_every steps")
    chosen = steps[-1] if step is None else step
    if chosen not in steps:
        raise UserError(f"explain: --step {step} was not logged in {run_dir}; logged steps: "
                        f"{', '.join(map(str, steps))}")
    return torch.load(explain_path(run_dir, chosen), weights_only=False)


def _pass(s: dict[str, Any], rows: slice, logprobs: torch.Tensor, old: torch.Tensor, ref: torch.Tensor,
          advantages: torch.Tensor, entropy: torch.Tensor, mask: torch.Tensor, norm: LossNormalizer) -> PassView:
    """A pass with `logprobs` as pi_theta over the whole batch; the view keeps the group's rows.

    `entropy` is the first pass's (only an entropy bonus reads it; a second pass would see its own)."""
    kl = KL_ESTIMATORS.get(s["kl_estimator"])(logprobs, ref) * mask
    kl_term = s["kl_weight"] * kl
    log_ratio = RATIO_LEVELS.get(s["ratio_level"])(logprobs, old, mask)
    policy = POLICY_LOSSES.get(s["policy_loss"])(log_ratio, advantages, mask, s["eps_low"], s["eps_high"],
                                                 s["dual_clip"])
    per_token = policy.per_token_loss - s["entropy_coef"] * entropy + kl_term
    aggregate = LOSS_AGGREGATIONS.get(s["loss_aggregation"])
    ratio = log_ratio.exp()[rows]
    a = advantages[rows, None]
    clipped = torch.clamp(ratio, 1 - s["eps_low"], 1 + s["eps_high"]) * a
    unclipped = ratio * a
    group_mask = mask[rows]
    picked_clip = (clipped < unclipped) & group_mask
    per_completion = torch.stack([aggregate(per_token[i : i + 1], mask[i : i + 1], norm)
                                  for i in range(rows.start, rows.stop)])
    return PassView(logprobs[rows], kl[rows], ratio * group_mask, unclipped, clipped, per_token[rows], per_completion,
                    float(aggregate(per_token[rows], group_mask, norm)),
                    float(picked_clip.sum() / group_mask.sum().clamp(min=1)))


def default_group(record: dict[str, Any]) -> int:
    """The first group whose rewards differ (the ones that carry a learning signal), else 0."""
    grouped = record["rewards"].view(-1, record["settings"]["group_size"])  # (B, G)
    differ = (grouped.amax(1) != grouped.amin(1)).nonzero()
    return int(differ[0]) if differ.numel() else 0


def dissect(record: dict[str, Any], group: int | None = None) -> GroupView:
    """Recompute group `group` (default: `default_group`) of a logged step from its inputs with `grpo.algo`."""
    s = record["settings"]
    G = s["group_size"]
    groups = record["rewards"].shape[0] // G
    group = default_group(record) if group is None else group
    if not 0 <= group < groups:
        raise UserError(f"explain: --group {group} is out of range; step {record['step']} has groups 0-{groups - 1}")
    rows = slice(group * G, (group + 1) * G)
    mask = record["completion_mask"].bool()
    rewards, valid = record["rewards"].float(), record["valid"].bool()
    inputs = AdvantageInputs(rewards, valid, G, std=s["std"], eps=s["advantage_eps"])
    advantages = ADVANTAGE_ESTIMATORS.get(s["advantage"])(inputs)  # batch-level estimators see the batch
    norm = LossNormalizer(**s["norm"])
    old, ref, entropy = record["old_logprobs"], record["ref_logprobs"], record["entropy"]
    first = _pass(s, rows, record["logprobs"], old, ref, advantages, entropy, mask, norm)
    second = _pass(s, rows, record["updated_logprobs"], old, ref, advantages, entropy, mask, norm)
    group_rewards = rewards[rows][valid[rows]]
    correction = 1 if s["std"] == "sample" else 0
    std = float(group_rewards.std(correction=correction)) if group_rewards.numel() > correction else 0.0
    tokens = [[tok for tok, keep in zip(record["completion_tokens"][i], mask[i].tolist()) if keep]
              for i in range(rows.start, rows.stop)]
    return GroupView(record["step"], group, groups, record["prompts"][rows.start], tokens, rewards[rows], valid[rows],
                     advantages[rows], float(group_rewards.mean()) if group_rewards.numel() else 0.0, std,
                     old[rows], ref[rows], mask[rows], first, second,
                     float(record["contribution"][group]), s)


def _token_rows(view: GroupView, p: PassView, i: int) -> list[tuple[str, ...]]:
    """One completion's tokens with every column of COLUMNS, as strings."""
    lines = []
    for t, token in enumerate(view.tokens[i]):
        pick = "clip" if p.clipped[i, t] < p.unclipped[i, t] else "ratio"
        lines.append((token, f"{p.logprobs[i, t]:.4f}", f"{view.old[i, t]:.4f}", f"{p.ratio[i, t]:.4f}",
                      f"{p.unclipped[i, t]:+.4f}", f"{p.clipped[i, t]:+.4f}", pick, f"{view.ref[i, t]:.4f}",
                      f"{p.kl[i, t]:.5f}", f"{p.per_token_loss[i, t]:+.5f}"))
    return lines


def _header(view: GroupView) -> list[str]:
    s = view.settings
    std_kind = "sample std (divides by n - 1)" if s["std"] == "sample" else "population std (divides by n)"
    return [
        f"step {view.step}, group {view.group} of {view.groups} (G = {len(view.tokens)} completions), "
        f"prompt: {view.prompt!r}",
        f"group rewards: mean {view.mean:.4f}, {std_kind} {view.std:.4f}; advantage estimator "
        f"{s['advantage']!r}" + (f": A_i = (r_i - mean) / (std + {s['advantage_eps']:g})" if s["advantage"] == "grpo"
                                 else " (its formula: grpo.algo.advantages)"),
        f"clip eps [{s['eps_low']:g}, {s['eps_high']:g}], "
        + (f"KL {s['kl_estimator']} weight {s['kl_weight']:g}, " if s["kl_weight"] else
           "no KL term in the loss (beta 0, or the KL is in the reward; logp_ref and kl are then not used), ")
        + f"aggregation {s['loss_aggregation']!r} over the batch's {s['norm']['num_sequences']} completions and "
        f"{s['norm']['num_tokens']} tokens, algo.mu = {s['mu']}",
    ]


def _completions(view: GroupView, p: PassView) -> list[str]:
    lines = [f"{'i':>2} {'reward':>7} {'advantage':>10} {'tokens':>6} {'contribution':>13}  completion"]
    for i, tokens in enumerate(view.tokens):
        reward = f"{view.rewards[i]:.3f}" if view.valid[i] else "invalid"
        lines.append(f"{i:>2} {reward:>7} {view.advantages[i]:>+10.4f} {len(tokens):>6} "
                     f"{p.per_completion[i]:>+13.6f}  {''.join(tokens)}")
    return lines


def render_text(view: GroupView) -> str:
    """The dissected group as plain text for the terminal."""
    lines = _header(view) + [""] + _completions(view, view.first) + ["", "columns:"]
    lines += [f"  {name:<9} {meaning}" for name, meaning in COLUMNS]
    head = ("token", *(name for name, _ in COLUMNS))
    for i in range(len(view.tokens)):
        lines += ["", f"completion {i} (A = {view.advantages[i]:+.4f}):", "  ".join(f"{h:>9}" for h in head)]
        lines += ["  ".join(f"{cell:>9}" for cell in row) for row in _token_rows(view, view.first, i)]
    lines += ["", f"group's contribution to the loss, recomputed: {view.first.contribution:+.8f}; logged by the "
              f"trainer inside the step: {view.logged_contribution:+.8f} (difference "
              f"{abs(view.first.contribution - view.logged_contribution):.1e})",
              f"clip fraction of this group on this pass: {view.first.clip_fraction:.3f}", ZERO_SUM_NOTE]
    if view.settings["mu"] == 1:
        lines += ["", MU_ONE_NOTE]
    else:
        lines += ["", "A second pass over the same rollouts (algo.mu > 1) sees the policy after this update:"]
    second = view.second
    lines += [f"on a second pass: ratios from {float(second.ratio[view.mask].min()):.4f} to "
              f"{float(second.ratio[view.mask].max()):.4f}, clip fraction {second.clip_fraction:.3f}, "
              f"group contribution {second.contribution:+.8f}", ""] + _completions(view, second)
    return "\n".join(lines)


def render_html(view: GroupView) -> str:
    """The dissected group as an HTML section for report.html."""
    def table(p: PassView, i: int) -> str:
        head = "".join(f"<th title='{html.escape(m)}'>{html.escape(n)}</th>" for n, m in (("token", ""), *COLUMNS))
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                       for row in _token_rows(view, p, i))
        return f"<table><tr>{head}</tr>{body}</table>"

    parts = ["<h2>One GRPO step by hand (<code>grpo explain</code>)</h2>",
             *(f"<p>{html.escape(line)}</p>" for line in _header(view)),
             f"<pre>{html.escape(chr(10).join(_completions(view, view.first)))}</pre>",
             "<ul>" + "".join(f"<li><b>{html.escape(n)}</b>: {html.escape(m)}</li>" for n, m in COLUMNS) + "</ul>"]
    for i in range(len(view.tokens)):
        parts.append(f"<details><summary>completion {i}: {html.escape(''.join(view.tokens[i]))} "
                     f"(A = {view.advantages[i]:+.4f})</summary>{table(view.first, i)}</details>")
    parts.append(f"<p>Contribution to the loss, recomputed: {view.first.contribution:+.8f}; logged inside the step: "
                 f"{view.logged_contribution:+.8f}.</p>")
    if view.settings["mu"] == 1:
        parts.append(f"<pre>{html.escape(MU_ONE_NOTE)}</pre>")
    parts.append(f"<p>On a second pass: clip fraction {view.second.clip_fraction:.3f}, contribution "
                 f"{view.second.contribution:+.8f}.</p>"
                 f"<pre>{html.escape(chr(10).join(_completions(view, view.second)))}</pre>")
    return "".join(parts)


def explain_html(run_dir: Path) -> str:
    """The report section for the run's latest logged step and its default group ("" when nothing was logged)."""
    if not (run_dir / EXPLAIN_DIR).is_dir():
        return ""
    try:
        return render_html(dissect(load_record(run_dir, None)))
    except UserError:
        return ""
