"""Sandboxes run in parallel: one slot per worker, each with a uid leased to it alone when the trainer is root.

Threads only wait here (every execution is a separate process tree), so a thread pool is enough to
keep `workers` sandboxes busy. The host's layers are found and probed once per process.
"""

from __future__ import annotations

import logging
import os
import queue
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import TypeVar

from grpo.sandbox.layers import LAYERS, Host, discover, require, without
from grpo.sandbox.runner import Execution, Job, Limits, Sandbox

logger = logging.getLogger("grpo.sandbox")
T = TypeVar("T")
DEFAULT_MINIMUM = LAYERS  # refuse to run untrusted code with fewer layers unless the user lowers this


def _works(host: Host) -> str:
    """'' when `print(1)` runs under `host`'s layers, else the reason it did not."""
    sandbox = Sandbox(host)
    try:
        result = sandbox.execute(Job("script", "print(1)"), Limits(timeout_s=30))
    finally:
        sandbox.close()
    if result.status == "exited" and result.exit_code == 0 and result.stdout == b"1\n":
        return ""
    return (result.detail or result.stderr.decode(errors="replace") or result.status).strip().splitlines()[-1][:200]


@lru_cache(maxsize=1)
def probed_host() -> Host:
    """The host's tools with every layer that fails a live `print(1)` switched off (cached)."""
    host = discover()
    for layer in ("namespaces", "seccomp"):
        if layer in host.layers and (why := _works(host)):
            host = without(host, layer, f"probe failed: {why}")
    return host


class SandboxPool:
    """Up to `workers` executions at once (default: the core count) under at least `minimum` layers."""

    def __init__(self, workers: int = 0, limits: Limits | None = None,
                 minimum: Sequence[str] = DEFAULT_MINIMUM, host: Host | None = None, announce: bool = True) -> None:
        self.host = host or probed_host()
        require(self.host, tuple(minimum))
        if announce:  # a missing layer is worth a warning; the full stack is worth a line in the log
            (logger.warning if self.host.missing else logger.info)("%s", self.host.describe())
        self.workers = workers or os.cpu_count() or 1
        self.limits = limits or Limits()
        self._slots: queue.Queue[Sandbox] = queue.Queue()
        self._sandboxes = [Sandbox(self.host, self.limits) for _ in range(self.workers)]
        for sandbox in self._sandboxes:
            self._slots.put(sandbox)
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="grpo-sandbox")

    def execute(self, job: Job, limits: Limits | None = None) -> Execution:
        """Run one job on a free slot (blocks until one is free)."""
        sandbox = self._slots.get()
        try:
            return sandbox.execute(job, limits)
        finally:
            self._slots.put(sandbox)

    def map(self, jobs: Sequence[Job], limits: Limits | None = None) -> list[Execution]:
        """Run every job, up to `workers` at a time; results in the order of `jobs`."""
        return list(self._executor.map(lambda job: self.execute(job, limits), jobs))

    def parallel(self, fn: Callable[..., T], *iterables: Iterable) -> list[T]:
        """`fn` over the zipped iterables on the pool's threads (fn may call `execute`, never `map`)."""
        return list(self._executor.map(fn, *iterables))

    def close(self) -> None:
        """Stop the worker threads (running executions finish first), then give the slots' uids back."""
        self._executor.shutdown(wait=True)
        for sandbox in self._sandboxes:
            sandbox.close()
