"""Reward functions in worker processes, so that a reward that hangs, spins, exits, segfaults or eats
memory costs its samples a fallback score and nothing else.

Workers are started by a `forkserver` (never by forking the trainer, whose threads, CUDA context and
gigabytes of tensors a fork would copy): the fork server preloads this module once, and each new
worker is a cheap fork of that small process. A worker imports each reward function by name (a
built-in name or `package.module:function`) and calls it on request; its address space is capped
(`memory_mb`), so unbounded allocation ends in a MemoryError there. The trainer waits for the answer
at most `timeout` seconds; a worker that does not answer is killed and replaced by the standby
worker, which was started in advance so that the run goes on at its normal speed.

Functions that cannot be named for import (a lambda or a closure passed through the Python API) stay
in the trainer's process: `importable_name` returns None for them and the guard warns once.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import multiprocessing
import signal
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection
from typing import Any


class WorkerFailure(Exception):
    """The call did not produce a value: `detail` says why in one line, `trace` holds any traceback."""

    def __init__(self, detail: str, trace: str = "") -> None:
        super().__init__(detail)
        self.detail, self.trace = detail, trace


def importable_name(fn: Callable[..., Any]) -> str | None:
    """`module:qualname` when importing that name gives back `fn` itself, else None (lambdas, closures,
    functions defined in `__main__`, callable objects)."""
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)
    if not module or not qualname or module == "__main__" or "<" in qualname:
        return None
    try:
        target: Any = importlib.import_module(module)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError):
        return None
    return f"{module}:{qualname}" if target is fn else None


def _resolve(name: str) -> Callable[..., Any]:
    module, _, qualname = name.partition(":")
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


def _serve(conn: Connection, memory_mb: int) -> None:
    """Worker main loop: (name, completions, columns) in, ("ok", values) or ("error", detail, trace) out."""
    import resource

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the trainer's to handle
    if memory_mb > 0:
        limit = memory_mb << 20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    functions: dict[str, Callable[..., Any]] = {}
    while True:
        try:
            name, completions, columns = conn.recv()
        except (EOFError, OSError):
            return
        try:
            fn = functions.get(name) or functions.setdefault(name, _resolve(name))
            values = fn(completions, **columns)
            conn.send(("ok", values))
        except BaseException as error:  # noqa: BLE001 - user code: report whatever it raised
            message = f"raised {type(error).__name__}: {error}"
            del error
            try:
                conn.send(("error", message, traceback.format_exc()))
            except BaseException:  # noqa: BLE001 - e.g. MemoryError while sending: let the trainer see EOF
                return


@contextlib.contextmanager
def _main_script_hidden() -> Iterator[None]:
    """Hide the trainer's `__main__.__file__` while a worker starts, so that multiprocessing does not
    re-run the trainer's script (guarded by `if __name__ == "__main__"` or not) in every worker."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or path is None or getattr(main, "__spec__", None) is not None:
        yield
        return
    del main.__file__
    try:
        yield
    finally:
        main.__file__ = path


class _Worker:
    def __init__(self, context: multiprocessing.context.BaseContext, memory_mb: int) -> None:
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, memory_mb), daemon=True, name="grpo-reward")
        with _main_script_hidden():
            self.process.start()
        child.close()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        self.conn.close()


class RewardWorkers:
    """One working reward process and one standby; `call` runs a named function in the working one."""

    def __init__(self, memory_mb: int = 8192, method: str = "forkserver") -> None:
        self.memory_mb = memory_mb
        self._context = multiprocessing.get_context(method)
        if method == "forkserver":
            self._context.set_forkserver_preload(["grpo.rewards.workers", "grpo.rewards.combine"])
        self._active = _Worker(self._context, memory_mb)
        self._standby = _Worker(self._context, memory_mb)
        self.replaced = 0
        atexit.register(self.close)

    def _replace(self) -> None:
        self._active.kill()
        self._active, self._standby = self._standby, _Worker(self._context, self.memory_mb)
        self.replaced += 1

    def call(self, name: str, completions: list[str], columns: dict[str, Sequence[object]], timeout: float) -> Any:
        """`name(completions, **columns)` in a worker; `WorkerFailure` when it raised, died or timed out."""
        worker = self._active
        try:
            request = (name, list(completions), {k: list(v) for k, v in columns.items()})
            worker.conn.send(request)
            if not worker.conn.poll(timeout if timeout > 0 else None):
                self._replace()
                raise WorkerFailure(f"did not return within guards.reward_timeout={timeout:g} s (worker killed)")
            answer = worker.conn.recv()
        except (EOFError, OSError, BrokenPipeError):
            worker.process.join(1)
            code = worker.process.exitcode
            self._replace()
            how = f"signal {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit code {code}"
            raise WorkerFailure(f"killed its worker process ({how})") from None
        if answer[0] == "error":
            raise WorkerFailure(answer[1], answer[2])
        return answer[1]

    def close(self) -> None:
        """Stop both workers."""
        for worker in (self._active, self._standby):
            worker.kill()
        atexit.unregister(self.close)
