"""Pairwise preference losses on chosen/rejected log-ratios (DPO family).

Every loss has the signature ``(chosen_logratios (B,), rejected_logratios (B,), beta) ->
(losses (B,), PreferenceStats)`` and is registered in ``PREFERENCE_LOSSES``.

A log-ratio is log pi_theta(y | x) - log pi_ref(y | x) for a whole response y (the sum of its token
log-probs under each model). Whether that sum is length-normalised (IPO's authors and TRL's "ipo"
use the per-token mean) is the caller's choice; the formulas here take the log-ratios as given.
Write h = chosen_logratios - rejected_logratios for the log-ratio margin.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from grpo.algo.registry import PREFERENCE_LOSSES


@dataclass(frozen=True)
class PreferenceStats:
    """Detached 0-d statistics over the pairs, with implicit rewards beta * logratio (as TRL logs).

    Fields:
        reward_accuracy: share of pairs whose chosen reward is strictly above the rejected one.
        margin_mean: mean of beta * (chosen_logratios - rejected_logratios).
        chosen_reward_mean: mean of beta * chosen_logratios.
        rejected_reward_mean: mean of beta * rejected_logratios.
    """

    reward_accuracy: Tensor
    margin_mean: Tensor
    chosen_reward_mean: Tensor
    rejected_reward_mean: Tensor


def _preference_stats(chosen_logratios: Tensor, rejected_logratios: Tensor, beta: float) -> PreferenceStats:
    chosen = beta * chosen_logratios.detach()  # (B,)
    rejected = beta * rejected_logratios.detach()  # (B,)
    return PreferenceStats(
        reward_accuracy=(chosen > rejected).float().mean(),
        margin_mean=(chosen - rejected).mean(),
        chosen_reward_mean=chosen.mean(),
        rejected_reward_mean=rejected.mean(),
    )


def _check_args(chosen_logratios: Tensor, rejected_logratios: Tensor, beta: float) -> None:
    if chosen_logratios.ndim != 1 or chosen_logratios.shape != rejected_logratios.shape:
        raise ValueError(f"chosen_logratios and rejected_logratios must both have shape (B,), got "
                         f"{tuple(chosen_logratios.shape)} and {tuple(rejected_logratios.shape)}")
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")


@PREFERENCE_LOSSES.register("dpo")
def dpo_loss(
    chosen_logratios: Tensor, rejected_logratios: Tensor, beta: float
) -> tuple[Tensor, PreferenceStats]:
    """Direct Preference Optimisation: logistic loss on the scaled log-ratio margin.

    Equation: loss = -log sigmoid(beta * h), h = chosen_logratios - rejected_logratios.
    Paper: Rafailov et al. 2023, "Direct Preference Optimization: Your Language Model is Secretly a
    Reward Model", eq. 7.
    Shapes: chosen_logratios, rejected_logratios (B,) -> losses (B,), PreferenceStats.
    Conventions: no label smoothing; ``logsigmoid`` keeps large margins finite.
    """
    _check_args(chosen_logratios, rejected_logratios, beta)
    losses = -F.logsigmoid(beta * (chosen_logratios - rejected_logratios))
    return losses, _preference_stats(chosen_logratios, rejected_logratios, beta)


@PREFERENCE_LOSSES.register("ipo")
def ipo_loss(
    chosen_logratios: Tensor, rejected_logratios: Tensor, beta: float
) -> tuple[Tensor, PreferenceStats]:
    """Identity Preference Optimisation: squared distance of the margin from a target 1 / (2 beta).

    Equation: loss = (h - 1 / (2 * beta))^2, h = chosen_logratios - rejected_logratios
    (beta plays the role of IPO's regularisation tau).
    Paper: Azar et al. 2023, "A General Theoretical Paradigm to Understand Learning from Human
    Preferences" (arXiv:2310.12036), the sampled IPO loss; same form as TRL's ``loss_type="ipo"``.
    Shapes: chosen_logratios, rejected_logratios (B,) -> losses (B,), PreferenceStats.
    """
    _check_args(chosen_logratios, rejected_logratios, beta)
    losses = (chosen_logratios - rejected_logratios - 1.0 / (2.0 * beta)) ** 2
    return losses, _preference_stats(chosen_logratios, rejected_logratios, beta)


@PREFERENCE_LOSSES.register("hinge")
def hinge_loss(
    chosen_logratios: Tensor, rejected_logratios: Tensor, beta: float
) -> tuple[Tensor, PreferenceStats]:
    """SLiC hinge loss on the scaled log-ratio margin.

    Equation: loss = max(0, 1 - beta * h), h = chosen_logratios - rejected_logratios.
    Paper: Zhao et al. 2023, "SLiC-HF: Sequence Likelihood Calibration with Human Feedback"
    (arXiv:2305.10425), rank calibration loss with margin delta = 1 / beta; same form as TRL's
    ``loss_type="hinge"``.
    Shapes: chosen_logratios, rejected_logratios (B,) -> losses (B,), PreferenceStats.
    """
    _check_args(chosen_logratios, rejected_logratios, beta)
    losses = torch.relu(1.0 - beta * (chosen_logratios - rejected_logratios))
    return losses, _preference_stats(chosen_logratios, rejected_logratios, beta)
