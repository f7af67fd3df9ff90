"""Untrusted programs, run under layered isolation and graded outside the sandbox.

`SandboxPool` runs `Job`s under bubblewrap namespaces, a seccomp filter, an unprivileged uid and
rlimits (whatever the host offers, checked at start, never below a configured minimum) and returns
typed `Execution`s; `grpo.sandbox.grade` turns executions into verdicts by comparing the program's
outputs with expected values in the trainer's own process. See docs/security.md.
"""

from grpo.sandbox.layers import LAYERS, Host, SandboxUnavailable
from grpo.sandbox.pool import SandboxPool, probed_host
from grpo.sandbox.runner import Execution, Job, Limits, Sandbox

__all__ = ["LAYERS", "Execution", "Host", "Job", "Limits", "Sandbox", "SandboxPool", "SandboxUnavailable",
           "probed_host"]
