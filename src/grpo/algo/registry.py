"""Name-to-function tables, one per family of formulas (design guide P4).

Each table fixes the parameter names every entry must have, so the trainer can call any entry the
same way and never branches on a variant name. Registering a name twice, or a function whose
parameters differ from the table's, is an error at import time; looking up an unknown name fails
with the valid names and the closest match, so a config typo fails before any model loads.

The tables are filled by the modules that define the formulas (``advantages``, ``ratio``,
``policy_loss``, ``kl``, ``aggregate``, ``preference``, ``shaping``,
``rollout_correction``); ``import grpo.algo`` imports them all.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Generic, TypeVar

from torch import Tensor

if TYPE_CHECKING:
    from grpo.algo.advantages import AdvantageInputs
    from grpo.algo.aggregate import LossNormalizer
    from grpo.algo.policy_loss import PolicyLossOutput
    from grpo.algo.preference import PreferenceStats
    from grpo.algo.rollout_correction import CorrectionOutput
    from grpo.algo.shaping import KLWeights, OverlongOutput

F = TypeVar("F", bound=Callable[..., object])


class UnknownNameError(KeyError, ValueError):
    """Lookup of a name that is not in a registry; catchable as KeyError or ValueError.

    ``str()`` gives the plain one-line message (a bare KeyError would wrap it in quotes).
    """

    def __str__(self) -> str:
        return str(self.args[0])


class Registry(Generic[F]):
    """A table from names to functions that all share one parameter list.

    Args:
        kind: what an entry is, in words, used in error messages (e.g. "advantage estimator").
        params: the parameter names, in order, that every registered function must have.
    """

    def __init__(self, kind: str, params: tuple[str, ...]) -> None:
        self.kind = kind
        self.params = params
        self._table: dict[str, F] = {}

    def register(self, name: str) -> Callable[[F], F]:
        """Decorator adding a function under ``name``; a taken name or wrong parameters raise."""

        def decorator(fn: F) -> F:
            if name in self._table:
                raise ValueError(
                    f"{self.kind} {name!r} is already registered (by {self._table[name].__qualname__})"
                )
            found = tuple(inspect.signature(fn).parameters)
            if found != self.params:
                raise TypeError(
                    f"{self.kind} {name!r} must take parameters {self.params}, "
                    f"but {fn.__qualname__} takes {found}"
                )
            self._table[name] = fn
            return fn

        return decorator

    def get(self, name: str) -> F:
        """Return the function registered as ``name``; unknown names raise UnknownNameError."""
        try:
            return self._table[name]
        except KeyError:
            raise UnknownNameError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        """One-line message for an unknown name: the closest match (if any) and all valid names."""
        valid = self.names()
        close = difflib.get_close_matches(name, valid, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ";"
        return f"unknown {self.kind} {name!r}{hint} valid: {', '.join(valid)}"

    def names(self) -> tuple[str, ...]:
        """Registered names in registration order."""
        return tuple(self._table)

    def __contains__(self, name: object) -> bool:
        return name in self._table

    def __iter__(self) -> Iterator[str]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, names={self.names()})"


# One signature per table. The parameter names are checked at registration; the Callable types say
# what the trainer may rely on.
AdvantageEstimator = Callable[["AdvantageInputs"], Tensor]
RatioLevel = Callable[[Tensor, Tensor, Tensor], Tensor]
PolicyLoss = Callable[[Tensor, Tensor, Tensor, float, float, "float | None"], "PolicyLossOutput"]
KLEstimator = Callable[[Tensor, Tensor], Tensor]
LossAggregation = Callable[[Tensor, Tensor, "LossNormalizer"], Tensor]
PreferenceLoss = Callable[[Tensor, Tensor, float], "tuple[Tensor, PreferenceStats]"]
KLPlacement = Callable[[float], "KLWeights"]
RolloutCorrection = Callable[[Tensor, Tensor, Tensor, str, float], "CorrectionOutput"]
CorrectionLevel = Callable[[Tensor, Tensor, Tensor], Tensor]
OverlongPolicy = Callable[[Tensor, Tensor, Tensor, Tensor, int, int, float], "OverlongOutput"]

ADVANTAGE_ESTIMATORS: Registry[AdvantageEstimator] = Registry("advantage estimator", ("inputs",))
RATIO_LEVELS: Registry[RatioLevel] = Registry(
    "ratio level", ("logprobs", "old_logprobs", "completion_mask")
)
POLICY_LOSSES: Registry[PolicyLoss] = Registry(
    "policy loss",
    ("log_ratio", "advantages", "completion_mask", "eps_low", "eps_high", "dual_clip"),
)
KL_ESTIMATORS: Registry[KLEstimator] = Registry("KL estimator", ("logprobs", "ref_logprobs"))
LOSS_AGGREGATIONS: Registry[LossAggregation] = Registry(
    "loss aggregation", ("per_token_loss", "completion_mask", "norm")
)
PREFERENCE_LOSSES: Registry[PreferenceLoss] = Registry(
    "preference loss", ("chosen_logratios", "rejected_logratios", "beta")
)
KL_PLACEMENTS: Registry[KLPlacement] = Registry("KL placement", ("beta",))
OVERLONG_POLICIES: Registry[OverlongPolicy] = Registry(
    "overlong policy",
    ("rewards", "completion_mask", "completion_lengths", "truncated", "max_completion_length", "buffer", "penalty"),
)
ROLLOUT_CORRECTIONS: Registry[RolloutCorrection] = Registry(
    "rollout correction", ("old_logprobs", "sampler_logprobs", "completion_mask", "level", "cap")
)
ROLLOUT_CORRECTION_LEVELS: Registry[CorrectionLevel] = Registry(
    "rollout correction level", ("old_logprobs", "sampler_logprobs", "completion_mask")
)
