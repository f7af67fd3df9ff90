"""Pure math for policy optimisation: tensors in, tensors out (design guide, section 1 and P1-P5).

This package imports only torch and the standard library. Importing it imports every module below,
so the registries are complete: ``ADVANTAGE_ESTIMATORS``, ``RATIO_LEVELS``, ``POLICY_LOSSES``,
``KL_ESTIMATORS``, ``LOSS_AGGREGATIONS``, ``PREFERENCE_LOSSES``, ``KL_PLACEMENTS``,
``OVERLONG_POLICIES``, ``ROLLOUT_CORRECTIONS`` and ``ROLLOUT_CORRECTION_LEVELS`` map config names to functions.
``pass_at_k`` is the held-out evaluation's unbiased pass@k estimator.
"""

from grpo.algo import (
    advantages,
    aggregate,
    gae,
    kl,
    masked,
    pass_rate,
    policy_loss,
    preference,
    ratio,
    registry,
    rollout_correction,
    shaping,
    value_loss,
)
from grpo.algo.advantages import AdvantageInputs
from grpo.algo.aggregate import LossNormalizer
from grpo.algo.gae import gae_advantages_and_returns
from grpo.algo.kl import masked_kl
from grpo.algo.masked import masked_mean, masked_sum, masked_whiten
from grpo.algo.pass_rate import pass_at_k
from grpo.algo.policy_loss import PolicyLossOutput, PolicyLossStats, clipped_surrogate_objective
from grpo.algo.preference import PreferenceStats
from grpo.algo.registry import (
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
    UnknownNameError,
)
from grpo.algo.rollout_correction import CorrectionOutput, mismatch_stats
from grpo.algo.shaping import (
    KLWeights,
    OverlongOutput,
    informative_groups,
    kl_penalized_rewards,
    ppo_token_rewards,
    soft_overlong_penalty,
)
from grpo.algo.value_loss import ValueLossStats, clipped_value_loss

__all__ = [
    "ADVANTAGE_ESTIMATORS",
    "KL_ESTIMATORS",
    "KL_PLACEMENTS",
    "LOSS_AGGREGATIONS",
    "OVERLONG_POLICIES",
    "POLICY_LOSSES",
    "PREFERENCE_LOSSES",
    "RATIO_LEVELS",
    "ROLLOUT_CORRECTIONS",
    "ROLLOUT_CORRECTION_LEVELS",
    "CorrectionOutput",
    "AdvantageInputs",
    "KLWeights",
    "OverlongOutput",
    "LossNormalizer",
    "PolicyLossOutput",
    "PolicyLossStats",
    "PreferenceStats",
    "Registry",
    "UnknownNameError",
    "ValueLossStats",
    "advantages",
    "aggregate",
    "clipped_surrogate_objective",
    "clipped_value_loss",
    "gae",
    "gae_advantages_and_returns",
    "informative_groups",
    "kl",
    "kl_penalized_rewards",
    "masked",
    "masked_kl",
    "masked_mean",
    "masked_sum",
    "masked_whiten",
    "pass_at_k",
    "pass_rate",
    "policy_loss",
    "ppo_token_rewards",
    "preference",
    "ratio",
    "registry",
    "rollout_correction",
    "mismatch_stats",
    "shaping",
    "soft_overlong_penalty",
    "value_loss",
]
