"""Reward functions that misbehave on purpose, for the fault-injection tests and benchmark.

`write_fault_module(directory, kind, every)` writes an importable module `grpo_faults_<kind>` whose
`reward` scores like a well-behaved function but, on every `every`-th call (counted in a file beside
the module, so the count survives the worker being killed), does one of: `hang` (sleeps), `spin`
(busy loop), `exit` (os._exit), `segfault` (reads address 0) or `memory` (allocates until refused).
"""

from __future__ import annotations

from pathlib import Path

FAULTS = ("hang", "spin", "exit", "segfault", "memory")
_BODY = '''import ctypes, os, time
from pathlib import Path

COUNTER = Path(__file__).with_suffix(".count")


def _fault():
    kind = {kind!r}
    if kind == "hang":
        time.sleep(3600)
    elif kind == "spin":
        while True:
            pass
    elif kind == "exit":
        os._exit(7)
    elif kind == "segfault":
        ctypes.string_at(0)
    elif kind == "memory":
        hoard = []
        while True:
            hoard.append(bytearray(64 * 1024 * 1024))


def reward(completions, **_):
    calls = int(COUNTER.read_text() or 0) + 1 if COUNTER.exists() else 1
    COUNTER.write_text(str(calls))
    if {every} and calls % {every} == 0:
        _fault()
    return [text.count("1") / max(1, len(text)) for text in completions]
'''


def write_fault_module(directory: Path, kind: str, every: int = 10) -> str:
    """Write the module for fault `kind` ("clean" for none) into `directory`; return its import name."""
    name = f"grpo_faults_{kind}"
    (directory / f"{name}.py").write_text(_BODY.format(kind=kind, every=0 if kind == "clean" else every))
    (directory / f"{name}.count").unlink(missing_ok=True)
    return name
