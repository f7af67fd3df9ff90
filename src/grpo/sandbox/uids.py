"""Sandbox uids leased per slot, so concurrent pools and trainers on one host never share one.

When the trainer is root, each sandbox slot runs programs as a dedicated unprivileged uid. The
kernel counts RLIMIT_NPROC per uid, and the teardown kills every process left under the slot's uid,
so two slots on one uid (two pools in one process, or two trainers on one machine) would cap each
other's forks and kill each other's programs. A slot therefore leases its uid: an exclusive `flock`
on `LEASE_DIR/<uid>.lock`, released when the slot closes or its process dies, whatever the cause.
"""

from __future__ import annotations

import fcntl
import os
import signal
import stat
import time
from pathlib import Path

from grpo.errors import UserError

UID_BASE, UID_COUNT = 61000, 1024  # uids 61000..62023 run sandboxed programs when the trainer is root
LEASE_DIR = Path("/tmp/grpo-uid-leases")
_RELEASED: set[int] = set()  # uids this process leased and gave back (for `leftover_processes`)
_HELD: set[int] = set()


class UidLease:
    """One uid held for as long as this object is open; `close` (or the process's end) gives it back."""

    def __init__(self, uid: int, fd: int) -> None:
        self.uid, self._fd = uid, fd
        _HELD.add(uid)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = -1
            _HELD.discard(self.uid)
            _RELEASED.add(self.uid)

    def __del__(self) -> None:
        self.close()


def _lease_dir() -> Path:
    """LEASE_DIR, created private to this (root) user; refused if someone else made it."""
    try:
        LEASE_DIR.mkdir(mode=0o700, exist_ok=True)
        info = LEASE_DIR.lstat()
    except OSError as error:
        raise UserError(f"sandbox: cannot use {LEASE_DIR} for uid leases: {error}") from error
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise UserError(f"sandbox: {LEASE_DIR} is not a private directory of this user; remove it and retry")
    return LEASE_DIR


def _try_lock(uid: int) -> int | None:
    """An open descriptor holding `uid`'s lock, or None if another holder has it."""
    fd = os.open(_lease_dir() / f"{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def lease_uid() -> UidLease:
    """The lowest sandbox uid no live slot on this host holds, with leftovers of a dead holder killed."""
    for uid in range(UID_BASE, UID_BASE + UID_COUNT):
        if uid in _HELD:
            continue
        fd = _try_lock(uid)
        if fd is not None:
            kill_all(uid)  # a holder that died may have left processes (its lock went with it)
            return UidLease(uid, fd)
    raise UserError(f"sandbox: all {UID_COUNT} sandbox uids from {UID_BASE} are leased; close other trainers")


def pids_of(uid: int) -> list[int]:
    """Live (not zombie) processes owned by `uid`, from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid != uid:
                    continue
                with open(f"/proc/{entry}/stat", "rb") as handle:
                    state = handle.read().rsplit(b")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if state not in (b"Z", b"X"):
                found.append(int(entry))
    return found


def kill_all(uid: int) -> None:
    """SIGKILL every process running as `uid` until none is left (a fork loop may race the first pass)."""
    for _ in range(200):
        pids = pids_of(uid)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.005)


def leftover_processes() -> list[int]:
    """Processes still running under a uid this process leased: a held one, or a released one that
    no other process has leased since (its processes would be that process's business)."""
    uids = set(_HELD)
    for uid in _RELEASED - _HELD:
        fd = _try_lock(uid)
        if fd is not None:
            os.close(fd)
            uids.add(uid)
    return sorted(pid for uid in uids for pid in pids_of(uid))
