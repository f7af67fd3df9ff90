"""Random small programs thrown at the sandbox: nothing they do may outlive an execution.

Each program strings together a few fragments drawn at random: arithmetic, output (some of it not
UTF-8, some of it huge), exceptions, exits of every kind, recursion, allocation, file writes, stdin,
threads, forks, setsid daemons, signals, sleeps, loops, closing every descriptor, killing the parent,
sockets and exec, and syntax errors. `fuzz` runs them on a pool and checks, after all of them, that
the trainer is alive and that no sandbox process or directory is left.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from grpo.sandbox.pool import SandboxPool
from grpo.sandbox.runner import STATUSES, Job, Limits
from grpo.sandbox.uids import leftover_processes

FRAGMENTS = (
    "print({a} * {b} + {c})",
    "print('x' * {big})",
    "import sys; sys.stdout.buffer.write(bytes(range(256)) * {a})",
    "raise ValueError({a})",
    "import sys; sys.exit({code})",
    "import os; os._exit({code})",
    "def f(n): return f(n + 1)\nf(0)",
    "x = bytearray({a} * 64 * 1024 * 1024)",
    "open('/tmp/f{a}', 'wb').write(b'z' * {big})",
    "import sys; print(sys.stdin.read()[:10])",
    "import threading\nts = [threading.Thread(target=lambda: sum(range(10**5))) for _ in range({a})]\n"
    "[t.start() for t in ts]\n[t.join() for t in ts]",
    "import os\nfor _ in range({a}):\n    if os.fork() == 0:\n        import time; time.sleep(5); os._exit(0)",
    "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(30)\n    os._exit(0)",
    "import signal, os; os.kill(os.getpid(), signal.SIG{sig})",
    "import time; time.sleep(0.0{a})",
    "n = 0\nfor i in range({big}):\n    n += i\nprint(n)",
    "while {loop}:\n    pass",
    "import os; os.closerange(0, 100)",
    "import os, signal\ntry:\n    os.kill(os.getppid(), signal.SIGKILL)\nexcept OSError:\n    pass",
    "import socket; socket.socket()",
    "import os; os.execv('/bin/true', ['true'])",
    "def broken(:\n    pass",
    "import random; random.seed({a}); print(random.random())",
)
SIGNALS = ("TERM", "KILL", "SEGV", "ABRT", "USR1", "XCPU")


def random_program(rng: random.Random) -> str:
    """A program of one to four fragments with random parameters."""
    parts = []
    for _ in range(rng.randint(1, 4)):
        fragment = rng.choice(FRAGMENTS)
        parts.append(fragment.format(a=rng.randint(1, 9), b=rng.randint(-99, 99), c=rng.randint(0, 9),
                                     big=rng.choice((10, 1000, 10**5, 2 * 10**6)), code=rng.choice((0, 1, 3, 255)),
                                     sig=rng.choice(SIGNALS), loop=rng.random() < 0.05))
    return "\n".join(parts) + "\n"


@dataclass
class FuzzReport:
    """How the executions ended, how long the slowest took, and anything left behind afterwards."""

    executions: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    slowest_s: float = 0.0
    leftover_processes: list[int] = field(default_factory=list)
    leftover_dirs: list[str] = field(default_factory=list)
    bad_status: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _sandbox_dirs() -> set[str]:
    return {p.name for p in Path("/tmp").glob("grpo-sandbox-*") if p.name != "grpo-sandbox-bin"}


def fuzz(pool: SandboxPool, count: int, seed: int = 0, limits: Limits | None = None) -> FuzzReport:
    """Run `count` random programs on `pool` and report (see `FuzzReport`)."""
    rng = random.Random(seed)
    programs = [random_program(rng) for _ in range(count)]
    stdins = [bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 64))) for _ in range(count)]
    limits = limits or Limits(timeout_s=2.0, memory_mb=256, cpu_s=2)
    before = _sandbox_dirs()
    start = time.monotonic()
    results = pool.map([Job("script", p, stdin=s) for p, s in zip(programs, stdins)], limits)
    report = FuzzReport(executions=len(results), seconds=time.monotonic() - start)
    for program, result in zip(programs, results):
        report.statuses[result.status] = report.statuses.get(result.status, 0) + 1
        report.slowest_s = max(report.slowest_s, result.wall_s)
        if result.status not in STATUSES or result.status == "sandbox_error":
            report.bad_status.append(program)
    report.leftover_processes = leftover_processes()
    report.leftover_dirs = sorted(_sandbox_dirs() - before)
    return report
