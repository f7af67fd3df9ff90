"""Sandbox uids are leased: two pools (or two trainers) never run programs as the same uid, so one
pool's teardown cannot kill the other's programs and their process limits stay apart."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from grpo.sandbox.pool import SandboxPool
from grpo.sandbox.runner import Job, Limits
from grpo.sandbox.uids import lease_uid

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="uids are leased only when the trainer is root")


def test_two_pools_get_distinct_uids_and_give_them_back(pool):
    first, second = SandboxPool(workers=1, host=pool.host), SandboxPool(workers=1, host=pool.host)
    uids = {first._sandboxes[0].uid, second._sandboxes[0].uid} | {s.uid for s in pool._sandboxes}
    assert len(uids) == 2 + pool.workers
    freed = second._sandboxes[0].uid
    second.close()
    third = SandboxPool(workers=1, host=pool.host)
    assert third._sandboxes[0].uid == freed
    first.close(), third.close()


def test_a_timeout_in_one_pool_does_not_kill_the_other_pools_program(pool):
    other = SandboxPool(workers=1, host=pool.host, limits=Limits(timeout_s=10))
    survivor: list = []
    waiting = threading.Thread(target=lambda: survivor.append(
        other.execute(Job("script", "import time; time.sleep(1.5); print('ok')"))))
    waiting.start()
    killed = pool.execute(Job("script", "import time; time.sleep(30)"), Limits(timeout_s=0.5))
    waiting.join()
    other.close()
    assert killed.status == "timeout"
    assert survivor[0].status == "exited" and survivor[0].stdout == b"ok\n"


def test_a_uid_leased_by_another_process_is_skipped():
    holder = subprocess.Popen([sys.executable, "-c", "from grpo.sandbox.uids import lease_uid; import sys, time; "
                               "lease = lease_uid(); print(lease.uid, flush=True); time.sleep(30)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        held = int(holder.stdout.readline())
        mine = lease_uid()
        assert mine.uid != held
        mine.close()
    finally:
        holder.kill(), holder.wait()
    again = lease_uid()  # the holder died: its lock went with it
    assert again.uid <= held
    again.close()
