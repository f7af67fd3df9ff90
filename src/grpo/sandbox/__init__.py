"""Untrusted programs, run under layered isolation and graded outside the sandbox.

`SandboxPool` runs `Job`s under bubblewrap namespaces, a seccomp filter, an unprivileged uid and
rlimits (whatever the host offers, checked at start, never below a configured minimum) and returns
typed `Execution`s; `grpo.sandbox.grade` turns executions into verdicts by comparing the program's
outputs with expected values in the trainer's own process. See docs/security.md.

Names are imported on first use, so that `grpo --help` does not pay for them.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"LAYERS": "layers", "Host": "layers", "SandboxUnavailable": "layers", "SandboxPool": "pool",
            "probed_host": "pool", "Execution": "runner", "Job": "runner", "Limits": "runner", "Sandbox": "runner",
            "Grader": "grade", "Grade": "grade", "Verdict": "grade", "parse_suite": "tests_format"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'grpo.sandbox' has no attribute {name!r}")
    return getattr(importlib.import_module(f"grpo.sandbox.{_EXPORTS[name]}"), name)
