"""The sandbox under test: one pool for the session, and a check after every test that the sandbox
left no process (any process of the uids this process leased, or in a PID namespace of ours) and no file behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from grpo.sandbox.pool import SandboxPool, probed_host
from grpo.sandbox.runner import Limits
from grpo.sandbox.uids import leftover_processes

WORKERS = 2
FAST = Limits(timeout_s=3.0, memory_mb=256, cpu_s=3)


def full_isolation_or_skip() -> None:
    """Skip, printing why, when this host lacks a layer (e.g. no unprivileged user namespaces)."""
    host = probed_host()
    if len(host.layers) < 4:
        pytest.skip(f"full isolation unavailable here ({host.describe()}); the fallback tests still run")


@pytest.fixture(scope="session")
def pool() -> SandboxPool:
    full_isolation_or_skip()
    sandboxes = SandboxPool(workers=WORKERS, limits=FAST)
    yield sandboxes
    sandboxes.close()


def _temp_leftovers() -> set[str]:
    return {p.name for p in Path("/tmp").glob("grpo-sandbox-*") if p.name != "grpo-sandbox-bin"}


def _describe(pid: int) -> str:
    try:
        status = Path(f"/proc/{pid}/status").read_text().splitlines()[:3]
        return f"{pid}: {Path(f'/proc/{pid}/cmdline').read_bytes()!r} {status}"
    except OSError:
        return f"{pid}: gone"


@pytest.fixture(autouse=True)
def nothing_left_behind():
    """After each test: no sandbox process alive, no new sandbox directory, the trainer's cwd unchanged."""
    before_tmp, before_cwd = _temp_leftovers(), sorted(os.listdir("."))
    yield
    left = leftover_processes()
    assert left == [], [_describe(pid) for pid in left]
    assert _temp_leftovers() <= before_tmp
    assert sorted(os.listdir(".")) == before_cwd
