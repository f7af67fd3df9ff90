"""Rule-based rewards: the contract, the built-in functions and the guard that calls them."""

from grpo.rewards.api import BUILTIN_REWARDS, RewardFn, exact_answer, final_answer
from grpo.rewards.guard import RewardError, score

__all__ = ["BUILTIN_REWARDS", "RewardError", "RewardFn", "exact_answer", "final_answer", "score"]
