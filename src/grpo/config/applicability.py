"""Which keys each algorithm reads: a key the user set that the chosen algorithm ignores is an error.

"Set" means written in the user's config file or given on the command line; the embedded defaults
do not count, nor does a resumed run's own config.yaml (every key is written out there).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from grpo.config.load import ConfigError, read_yaml

# Keys (or whole sections, ending in ".") that an algorithm does not use.
_CLIPPED_OBJECTIVE = ("algo.advantage", "algo.std", "algo.advantage_eps", "algo.policy_loss", "algo.eps",
                      "algo.eps_high", "algo.dual_clip", "algo.ratio_level", "algo.beta", "algo.kl_estimator",
                      "algo.loss_aggregation", "algo.mu", "algo.kl_placement", "algo.entropy_coef")
_GROUP_SHAPING = ("algo.advantage", "algo.std", "algo.advantage_eps", "algo.dynamic_sampling", "algo.max_draws",
                  "algo.overlong", "algo.overlong_buffer", "algo.overlong_penalty")
NOT_USED: dict[str, tuple[str, ...]] = {
    "grpo": ("ppo.", "dpo."),
    "ppo": (*_GROUP_SHAPING, "dpo."),
    "dpo": (*_CLIPPED_OBJECTIVE, *_GROUP_SHAPING, "ppo."),
}


def flat_keys(data: dict[str, Any], prefix: str = "") -> set[str]:
    """Dotted keys of a nested mapping: {"algo": {"beta": 0}} -> {"algo.beta"}."""
    keys: set[str] = set()
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        keys |= flat_keys(value, dotted + ".") if isinstance(value, dict) and value else {dotted}
    return keys


def user_keys(path: Path | None, overrides: list[str] | tuple[str, ...]) -> set[str]:
    """The keys the user set: those of the config file `path` (if any) and of the overrides."""
    keys = flat_keys(read_yaml(path)) if path is not None else set()
    return keys | {override.partition("=")[0].strip() for override in overrides}


def unused_key(algorithm: str, key: str) -> bool:
    """True when `algorithm` never reads `key` (a dotted key, or a section holding it); False for an unknown
    algorithm, which validation then names."""
    rules = NOT_USED.get(algorithm, ())
    return any(key == rule or key.startswith(rule) or rule.startswith(key + ".") for rule in rules)


def refuse_unused(algorithm: str, keys: set[str]) -> None:
    """One-line error naming the first key (sorted) that `algorithm` does not use."""
    unused = sorted(key for key in keys if unused_key(algorithm, key))
    if unused:
        more = f" (and {len(unused) - 1} more: {', '.join(unused[1:])})" if len(unused) > 1 else ""
        raise ConfigError(f"{unused[0]} does not apply to algorithm={algorithm}: remove it{more}")


def applicable_overrides(algorithm: str, overrides: list[str] | tuple[str, ...]) -> list[str]:
    """The overrides that `algorithm` reads (for `grpo compare`, which runs several algorithms)."""
    return [item for item in overrides if not unused_key(algorithm, item.partition("=")[0].strip())]
