"""Calling reward functions safely: the one place that checks what they return (P10).

A reward function is user code. `RewardGuard.score` calls it under a time limit and checks its
answer; when it raises, hangs, returns the wrong number of values or a value that is not a number,
the affected samples receive the configured fallback score, the failure is counted per function
(`reward_fallback/<name>` in the step's metrics) and the first traceback of each function is logged
once. With `strict`, any such failure is fatal instead. Non-finite rewards and rewards outside the
configured range are never propagated: they are marked invalid, which excludes them from the group
baseline and gives them a zero advantage, and they are counted (`reward_rejected`).

With `processes` on (`guards.reward_processes`, the default for `grpo train`), every function that
can be imported by name runs in a worker process (`grpo.rewards.workers`): a timeout kills and
replaces the worker, and a function that exits, segfaults or exhausts its memory gives the fallback
like any other failure. A function that cannot be imported by name (a lambda or closure passed from
Python) runs in the trainer's process, with a one-line warning that it is not isolated; there, as with
`processes` off, Python cannot kill a thread, so a call that never returns keeps running in a daemon
thread (it cannot block the run or its exit, but it keeps its CPU). Programs written by the policy
are a different matter: they run in `grpo.sandbox`.
"""

from __future__ import annotations

import logging
import math
import threading
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from grpo.errors import UserError
from grpo.rewards.workers import RewardWorkers, WorkerFailure, importable_name

logger = logging.getLogger("grpo.rewards")


class RewardError(UserError):
    """A reward function broke its contract (wrong length or type, raised, timed out) in strict mode."""


class RewardAbort(UserError):
    """Raised by a reward function to stop the run (e.g. the code sandbox keeps failing); never a fallback."""


class _Failure(Exception):
    """Internal: one call failed; `detail` is the one-line reason, `trace` the traceback text."""

    def __init__(self, detail: str, trace: str = "") -> None:
        super().__init__(detail)
        self.detail, self.trace = detail, trace


def _call(fn: Callable[..., Any], completions: list[str], columns: dict[str, Sequence[object]],
          timeout: float) -> Any:
    """`fn(completions, **columns)`, in a daemon thread when `timeout` > 0; failures become `_Failure`."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = fn(completions, **columns)
        except Exception as error:  # noqa: BLE001 - isolating user code is the point; reported by the caller
            outcome["error"] = error
            outcome["trace"] = traceback.format_exc()

    if timeout > 0:
        worker = threading.Thread(target=target, daemon=True, name="grpo-reward")
        worker.start()
        worker.join(timeout)
        if worker.is_alive():
            raise _Failure(f"did not return within guards.reward_timeout={timeout:g} s")
    else:
        target()
    if "error" in outcome:
        error = outcome["error"]
        if isinstance(error, RewardAbort):
            raise error
        raise _Failure(f"raised {type(error).__name__}: {error}", outcome["trace"])
    return outcome["value"]


@dataclass
class RewardGuard:
    """Calls reward functions with a time limit, a fallback score and per-function failure counts."""

    fallback: float = 0.0
    strict: bool = False
    timeout: float = 0.0
    low: float | None = None
    high: float | None = None
    processes: bool = False
    memory_mb: int = 8192
    _workers: RewardWorkers | None = None
    _names: dict[int, str | None] = field(default_factory=dict)  # id(fn) -> import name, or None: in-process
    _fallbacks: dict[str, int] = field(default_factory=dict)  # per function called: fallback samples this step
    _rejected: int = 0  # non-finite or out-of-range rewards this step
    _reported: set[str] = field(default_factory=set)

    def _fail(self, name: str, detail: str, trace: str, samples: int) -> None:
        message = f"reward function '{name}' {detail}"
        if self.strict:
            raise RewardError(message + " (guards.reward_strict is on)")
        self._fallbacks[name] = self._fallbacks.get(name, 0) + samples
        if name not in self._reported:
            self._reported.add(name)
            logger.warning("%s; its samples score the fallback %g (reported once per function)%s",
                           message, self.fallback, f"\n{trace}" if trace else "")

    def _in_range(self, value: float) -> bool:
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)

    def score(self, fn: Callable[..., Any], name: str, completions: list[str],
              columns: dict[str, Sequence[object]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Rewards (N,) float32 and valid (N,) bool for N completions; never raises unless `strict`.

        None, non-finite and out-of-range values are invalid (0.0 in `rewards`, excluded from the
        baseline); failed calls and values of the wrong type score `fallback` and count as valid.
        """
        n = len(completions)
        self._fallbacks.setdefault(name, 0)  # every called function reports, so all ranks log the same keys
        try:
            values = self._call(fn, name, completions, columns)
        except _Failure as failure:
            self._fail(name, failure.detail, failure.trace, n)
            return torch.full((n,), self.fallback, dtype=torch.float32), torch.ones(n, dtype=torch.bool)
        if not isinstance(values, (list, tuple)) or len(values) != n:
            got = f"{len(values)} values" if isinstance(values, (list, tuple)) else f"a {type(values).__name__}"
            self._fail(name, f"returned {got} for {n} completions", "", n)
            return torch.full((n,), self.fallback, dtype=torch.float32), torch.ones(n, dtype=torch.bool)
        rewards, valid = [], []
        for value in values:
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                self._fail(name, f"returned {type(value).__name__} {value!r}, expected float or None", "", 1)
                rewards.append(self.fallback)
                valid.append(True)
                continue
            ok = value is not None and math.isfinite(value) and self._in_range(float(value))
            self._rejected += value is not None and not ok
            rewards.append(float(value) if ok else 0.0)
            valid.append(ok)
        return torch.tensor(rewards, dtype=torch.float32), torch.tensor(valid, dtype=torch.bool)

    def _call(self, fn: Callable[..., Any], name: str, completions: list[str],
              columns: dict[str, Sequence[object]]) -> Any:
        """The call in a worker process when `processes` is on and `fn` has an import name, else here."""
        if not self.processes or getattr(fn, "runs_in_trainer", False):  # off, or trusted code that asks to stay
            return _call(fn, completions, columns, self.timeout)
        if id(fn) not in self._names:
            self._names[id(fn)] = importable_name(fn)
            if self._names[id(fn)] is None:
                logger.warning("reward function '%s' cannot be imported by name (a lambda or closure?), so it runs "
                               "in the trainer's process, not isolated", name)
        target = self._names[id(fn)]
        if target is None:
            return _call(fn, completions, columns, self.timeout)
        if self._workers is None:
            self._workers = RewardWorkers(self.memory_mb)
        try:
            return self._workers.call(target, completions, columns, self.timeout)
        except WorkerFailure as failure:
            raise _Failure(failure.detail, failure.trace) from None

    def close(self) -> None:
        """Stop the worker processes, if any were started."""
        if self._workers is not None:
            self._workers.close()
            self._workers = None

    def pop_stats(self) -> dict[str, torch.Tensor]:
        """This step's counts (fallback samples per function, rejected rewards), then reset them."""
        stats = {f"reward_fallback/{name}": torch.tensor(float(count)) for name, count in self._fallbacks.items()}
        stats["reward_rejected"] = torch.tensor(float(self._rejected))
        self._fallbacks, self._rejected = {}, 0
        return stats


def score(
    fn: Callable[..., list[float | None]],
    name: str,
    completions: list[str],
    columns: dict[str, Sequence[object]],
    guard: RewardGuard | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rewards (N,) float32 and valid (N,) bool; None and non-finite values are marked invalid.

    Invalid entries hold 0.0 in `rewards` and are excluded from the advantage baseline. Without a
    `guard`, any broken contract raises `RewardError` (strict, no time limit).
    """
    return (guard or RewardGuard(strict=True)).score(fn, name, completions, columns)
