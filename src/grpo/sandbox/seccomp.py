"""The seccomp filter, compiled once in the trainer (libseccomp through `pyseccomp`) to raw BPF.

The bootstrap inside the sandbox loads the compiled program with one `prctl` call just before the
untrusted program starts, so the sandbox needs neither libseccomp nor pyseccomp and pays only for
`ctypes`. Any call below kills the whole process (the trainer reports a `violation`): sockets of any
family, ptrace and cross-process memory access, new namespaces (unshare, setns, and clone with any
CLONE_NEW* flag), mounts, `execve`/`execveat` (the interpreter is already running; a path cannot be
filtered by seccomp, so no program may be started at all), BPF, perf events, userfaultfd, keyrings,
io_uring, module loading, kexec, swap and reboot. `clone3` answers ENOSYS, which makes libc fall back
to `clone`, whose flags the filter can read (clone3 passes them in memory, out of the filter's reach).
"""

from __future__ import annotations

import errno
import os
from functools import lru_cache

DENIED = ("socket", "socketpair", "connect", "bind", "listen", "accept", "accept4", "ptrace",
          "process_vm_readv", "process_vm_writev", "unshare", "setns", "mount", "umount2", "pivot_root",
          "chroot", "execve", "execveat", "bpf", "perf_event_open", "userfaultfd", "keyctl", "add_key",
          "request_key", "io_uring_setup", "kexec_load", "init_module", "finit_module", "swapon", "reboot",
          "open_by_handle_at", "name_to_handle_at")
CLONE_NEW_FLAGS = (0x00000080, 0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000,
                   0x40000000)  # NEWTIME, NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET


@lru_cache(maxsize=1)
def compiled_filter() -> bytes | None:
    """The filter as raw BPF (struct sock_filter[]), or None when libseccomp or pyseccomp is missing."""
    try:
        import pyseccomp as sc
    except (ImportError, RuntimeError, OSError):
        return None
    flt = sc.SyscallFilter(defaction=sc.ALLOW)
    for name in DENIED:
        flt.add_rule(sc.KILL_PROCESS, name)
    for flag in CLONE_NEW_FLAGS:
        flt.add_rule(sc.KILL_PROCESS, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    flt.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    read_end, write_end = os.pipe()
    try:
        with os.fdopen(write_end, "wb", closefd=True) as sink:
            flt.export_bpf(sink)
        chunks = []
        while chunk := os.read(read_end, 65536):
            chunks.append(chunk)
    finally:
        os.close(read_end)
    return b"".join(chunks)
