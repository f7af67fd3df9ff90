"""Hosts without user namespaces: the runner falls back to the strongest layers left, says which at
start-up, and refuses to start below the configured minimum."""

from __future__ import annotations

import dataclasses
import os
import time

import pytest

from grpo.sandbox.layers import LAYERS, SandboxUnavailable, require, without
from grpo.sandbox.pool import SandboxPool, _works, probed_host
from grpo.sandbox.runner import Job, Limits


@pytest.fixture(scope="module")
def no_namespaces():
    return without(probed_host(), "namespaces", "no unprivileged user namespaces (simulated)")


def test_refuses_below_the_minimum(no_namespaces):
    with pytest.raises(SandboxUnavailable, match="namespaces .no unprivileged user namespaces"):
        SandboxPool(workers=1, host=no_namespaces, minimum=LAYERS)
    require(no_namespaces, ("rlimits",))  # a lowered minimum is accepted


def test_describe_names_what_is_off_and_why(no_namespaces):
    assert "namespaces off (no unprivileged user namespaces (simulated))" in no_namespaces.describe()


def test_a_layer_that_fails_its_probe_is_reported():
    broken = dataclasses.replace(probed_host(), bwrap="/nonexistent/bwrap")
    if "namespaces" not in broken.layers:
        pytest.skip("namespaces are already off on this host")
    assert _works(broken) != ""


@pytest.fixture(scope="module")
def fallback_pool(no_namespaces):
    pool = SandboxPool(workers=1, host=no_namespaces, minimum=("rlimits",), limits=Limits(timeout_s=3, memory_mb=256))
    yield pool
    pool.close()


def test_fallback_runs_programs(fallback_pool):
    result = fallback_pool.execute(Job("script", "print(6 * 7)"))
    assert result.status == "exited" and result.stdout == b"42\n"


def test_fallback_keeps_time_and_memory_limits(fallback_pool):
    assert fallback_pool.execute(Job("script", "while True: pass"), Limits(timeout_s=1)).status == "timeout"
    assert fallback_pool.execute(Job("script", "x = bytearray(2 * 1024**3)")).status == "memory"


def test_fallback_environment_is_built_from_scratch(fallback_pool, monkeypatch):
    monkeypatch.setenv("GRPO_TEST_SECRET", "hunter2")
    assert b"hunter2" not in fallback_pool.execute(Job("script", "import os; print(dict(os.environ))")).stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="killing leftover daemons without namespaces needs a leased uid")
def test_fallback_kills_daemons_and_removes_its_directory(fallback_pool):
    source = ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\n"
              "open('left.txt', 'w').write('x')\nprint(os.getcwd())\n")
    started = time.monotonic()
    result = fallback_pool.execute(Job("script", source))
    assert time.monotonic() - started < 3
    assert not os.path.exists(result.stdout.decode().strip())


def test_fallback_still_filters_system_calls(fallback_pool):
    if "seccomp" not in fallback_pool.host.layers:
        pytest.skip("no seccomp on this host")
    assert fallback_pool.execute(Job("script", "import socket; socket.socket()")).status == "violation"
