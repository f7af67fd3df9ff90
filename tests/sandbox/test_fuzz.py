"""50 random small programs (the 1,000-program version is `grpo sandbox fuzz`)."""

from __future__ import annotations

import os

from grpo.sandbox.fuzz import fuzz


def test_fifty_random_programs_leave_nothing_behind(pool):
    report = fuzz(pool, 50, seed=1)
    assert report.executions == 50
    assert report.bad_status == []  # every execution ended in a known status, none in a sandbox error
    assert report.leftover_processes == [] and report.leftover_dirs == []
    assert report.slowest_s < 2.0 + 3.0  # the 2 s limit plus teardown, even under load
    assert len(report.statuses) >= 3  # the programs did reach different endings
    os.kill(os.getpid(), 0)
