"""One sandboxed execution: start the bootstrap under every available layer, watch it, tear it down.

`Sandbox.execute` never raises for anything the program does; what happened comes back as an
`Execution` whose `status` is one of `STATUSES`. The trainer's side of the contract:

- bwrap is started with an EMPTY environment (its own /proc/N/environ is readable from inside) and
  builds the program's environment from scratch;
- stdout, stderr and the results pipe are read with a cap; past the cap the program is killed
  (`output_limit`); past the wall-clock limit it is killed (`timeout`);
- teardown kills the whole sandbox: the PID namespace dies with its first process, and when the
  trainer is root every process left with the sandbox's leased uid is killed too (daemons that called
  setsid, or any process when namespaces are off), so nothing survives an execution.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from grpo.sandbox.bootstrap import MEMORY_EXIT
from grpo.sandbox.layers import Host
from grpo.sandbox.uids import UidLease, kill_all, lease_uid

BOOTSTRAP_SOURCE = (Path(__file__).parent / "bootstrap.py").read_text()
STATUSES = ("exited", "timeout", "memory", "output_limit", "violation", "sandbox_error")
_SIGSYS, _SIGKILL, _SIGXCPU = 31, 9, 24
_ENV = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}


@dataclass(frozen=True)
class Limits:
    """Per-execution limits. `cpu_s` defaults to the wall-clock limit rounded up, plus one."""

    timeout_s: float = 10.0
    memory_mb: int = 512
    cpu_s: int | None = None
    file_mb: int = 16
    tmpfs_mb: int = 64
    open_files: int = 64
    processes: int = 32
    output_bytes: int = 1 << 20

    def rlimits(self) -> dict[str, int]:
        """The bootstrap's rlimit table (bytes and counts)."""
        cpu = self.cpu_s if self.cpu_s is not None else int(self.timeout_s) + 1
        return {"cpu_s": cpu, "memory_bytes": self.memory_mb << 20, "file_bytes": self.file_mb << 20,
                "open_files": self.open_files, "processes": self.processes}


@dataclass(frozen=True)
class Job:
    """What to run: `script` (program on `stdin`), `function` (`entry` on each of `calls`, tagged
    argument lists) or `tests` (test code against a `table` of recorded outputs; `scan` collects calls)."""

    mode: str
    source: str = ""
    stdin: bytes = b""
    entry: str = "solution"
    calls: tuple = ()
    tests: str = ""
    table: tuple = ()
    scan: bool = False


@dataclass
class Execution:
    """What happened: status, exit code, captured output (truncated), result records, time, memory."""

    status: str
    exit_code: int | None
    stdout: bytes = b""
    stderr: bytes = b""
    records: list[dict] = field(default_factory=list)
    wall_s: float = 0.0
    peak_mb: float = 0.0
    detail: str = ""

    def summary(self) -> dict:
        """A JSON-ready dict (text decoded with replacement)."""
        return {"status": self.status, "exit_code": self.exit_code, "wall_s": round(self.wall_s, 4),
                "peak_mb": round(self.peak_mb, 1), "stdout": self.stdout.decode(errors="replace"),
                "stderr": self.stderr.decode(errors="replace"), "detail": self.detail}


def _memfd(name: str, data: bytes) -> int:
    fd = os.memfd_create(name, 0)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _bind_system(argv: list[str], prefix: str) -> None:
    """Read-only /usr, the usual top-level links or directories, and the interpreter's prefix."""
    argv += ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib64", "/lib32"):
        if os.path.islink(top):
            argv += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            argv += ["--ro-bind", top, top]
    if prefix and not prefix.startswith("/usr/") and prefix != "/usr":
        argv += ["--ro-bind", prefix, prefix]


class Sandbox:
    """Runs jobs one at a time under the layers `host` offers; when root, as a uid leased to it alone."""

    def __init__(self, host: Host, limits: Limits | None = None) -> None:
        self.host, self.limits = host, limits or Limits()
        self._lease: UidLease | None = lease_uid() if host.root and "unprivileged" in host.layers else None
        self.uid = self._lease.uid if self._lease else None

    def close(self) -> None:
        """Kill anything left under the uid and give the lease back (the sandbox runs nothing after)."""
        if self._lease is not None:
            kill_all(self._lease.uid)
            self._lease.close()
            self._lease = None

    def _job_bytes(self, job: Job, results_fd: int, limits: Limits) -> bytes:
        body = {"mode": job.mode, "source": job.source, "entry": job.entry, "calls": list(job.calls),
                "tests": job.tests, "table": list(job.table), "scan": job.scan, "results_fd": results_fd,
                "limits": limits.rlimits() if "rlimits" in self.host.layers else {},
                "seccomp": "seccomp" in self.host.layers}
        return json.dumps(body).encode()

    def _bwrap_argv(self, fds: dict[str, int], info_fd: int, limits: Limits) -> list[str]:
        argv = [self.host.bwrap, "--info-fd", str(info_fd), "--unshare-user", "--unshare-pid", "--unshare-net",
                "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--die-with-parent", "--new-session",
                "--cap-drop", "ALL", "--hostname", "sandbox"]
        _bind_system(argv, self.host.python_prefix)
        argv += ["--proc", "/proc", "--dev", "/dev", "--size", str(limits.tmpfs_mb << 20), "--tmpfs", "/tmp"]
        for name, fd in fds.items():
            argv += ["--ro-bind-data", str(fd), f"/sandbox/{name}"]
        argv += ["--remount-ro", "/", "--chdir", "/tmp", "--clearenv"]
        for key, value in _ENV.items():
            argv += ["--setenv", key, value]
        return argv + [self.host.python, "-I", "-S", "-B", "/sandbox/boot.py", "/sandbox/job.json"]

    def execute(self, job: Job, limits: Limits | None = None) -> Execution:
        """Run `job` to completion or to a limit; never raises for what the program does."""
        limits = limits or self.limits
        read_end, write_end = os.pipe()
        opened = [write_end]
        try:
            stdin_fd = _memfd("stdin", job.stdin)
            opened.append(stdin_fd)
            files = {"job.json": self._job_bytes(job, write_end, limits), "boot.py": BOOTSTRAP_SOURCE.encode()}
            if "seccomp" in self.host.layers:
                files["filter.bpf"] = self.host.seccomp_filter or b""
            if "namespaces" not in self.host.layers:
                return self._run_plain(files, stdin_fd, read_end, opened, limits)
            fds = {name: _memfd(name, data) for name, data in files.items()}
            opened += fds.values()
            info_read, info_write = os.pipe()
            opened.append(info_write)
            try:
                argv = self._bwrap_argv(fds, info_write, limits)
                return self._watch(argv, None, stdin_fd, read_end, opened, limits, info_read)
            finally:
                _close(info_read)
        finally:
            for fd in opened:
                _close(fd)
            _close(read_end)

    def _run_plain(self, files: dict[str, bytes], stdin_fd: int, read_end: int, opened: list[int],
                   limits: Limits) -> Execution:
        """The fallback without namespaces: a private temporary directory, removed afterwards."""
        import shutil
        import tempfile

        workdir = Path(tempfile.mkdtemp(prefix="grpo-sandbox-"))
        try:
            for name, data in files.items():
                (workdir / name).write_bytes(data)
            if self.uid is not None:
                os.chown(workdir, self.uid, self.uid)
            argv = [self.host.python, "-I", "-S", "-B", str(workdir / "boot.py"), str(workdir / "job.json")]
            return self._watch(argv, str(workdir), stdin_fd, read_end, opened, limits)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _watch(self, argv: list[str], cwd: str | None, stdin_fd: int, read_end: int, opened: list[int],
               limits: Limits, info_fd: int | None = None) -> Execution:
        start = time.monotonic()
        user = {"user": self.uid, "group": self.uid, "extra_groups": []} if self.uid is not None else {}
        env = {} if cwd is None else dict(_ENV, HOME=cwd)
        try:
            proc = subprocess.Popen(argv, stdin=stdin_fd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    env=env, cwd=cwd, pass_fds=tuple(opened), start_new_session=True, **user)
        except OSError as error:
            return Execution("sandbox_error", None, detail=f"could not start the sandbox: {error}")
        for fd in opened:
            _close(fd)
        opened.clear()
        streams, killed = _collect(proc, read_end, start + limits.timeout_s, limits.output_bytes, info_fd)
        if killed:
            self._kill(proc)
        _, status, _ = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        _wait_gone(streams.get("info", b""))
        if cwd is not None or killed:
            self._sweep()
        return _classify(proc.returncode, killed, streams, time.monotonic() - start)

    def _kill(self, proc: subprocess.Popen) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def _sweep(self) -> None:
        """Kill every process still running as this sandbox's uid (root only)."""
        if self.uid is not None:
            kill_all(self.uid)


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def _wait_gone(info: bytes, limit_s: float = 2.0) -> None:
    """Wait until the sandbox's first process (bwrap's `child-pid`) has exited: the kernel kills every
    other process of a PID namespace before its first process finishes exiting, and bwrap's monitor can
    return a moment earlier than that."""
    try:
        pid = int(json.loads(info.decode().split("}")[0] + "}")["child-pid"])
        pidfd = os.pidfd_open(pid)
    except (ValueError, KeyError, TypeError, IndexError, OSError):
        return  # no info (the sandbox never started) or the process is already gone
    try:
        selector = selectors.DefaultSelector()
        selector.register(pidfd, selectors.EVENT_READ)
        selector.select(limit_s)
        selector.close()
    finally:
        os.close(pidfd)


def _collect(proc: subprocess.Popen, results_fd: int, deadline: float, cap: int,
             info_fd: int | None = None) -> tuple[dict[str, bytes], str]:
    """Read stdout, stderr and results until the sandbox's process exits (then drain what is buffered;
    a daemon that kept a pipe open does not hold the run), the deadline passes or a stream passes `cap`."""
    chunks: dict[str, bytearray] = {"stdout": bytearray(), "stderr": bytearray(), "results": bytearray(),
                                    "info": bytearray()}
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ, "stdout")
    selector.register(proc.stderr, selectors.EVENT_READ, "stderr")
    selector.register(results_fd, selectors.EVENT_READ, "results")
    if info_fd is not None:
        selector.register(info_fd, selectors.EVENT_READ, "info")
    pidfd = os.pidfd_open(proc.pid)
    selector.register(pidfd, selectors.EVENT_READ, "exit")
    killed, exited = "", False
    try:
        while len(selector.get_map()) > (0 if exited else 1):
            remaining = 0.0 if exited else deadline - time.monotonic()
            if remaining <= 0 and not exited:
                killed = "timeout"
                break
            events = selector.select(remaining)
            if exited and not events:
                break  # exited and nothing left to read
            for key, _ in events:
                if key.data == "exit":
                    selector.unregister(pidfd)
                    exited = True
                    continue
                data = os.read(key.fd, 65536)
                if not data:
                    selector.unregister(key.fileobj)
                    continue
                buffer = chunks[key.data]
                buffer += data[: max(0, cap + 1 - len(buffer))]
                if len(buffer) > cap:
                    killed = "output_limit"
            if killed:
                break
    finally:
        selector.close()
        os.close(pidfd)
        proc.stdout.close()
        proc.stderr.close()
    return {name: bytes(buffer[:cap]) for name, buffer in chunks.items()}, killed


def _classify(code: int, killed: str, streams: dict[str, bytes], wall: float) -> Execution:
    """Turn how the process ended into a status (see `STATUSES`); the program's peak resident memory
    is what the bootstrap measured with wait4 (the last `peak_kb` record; 0 when it was killed)."""
    records, peak_mb = [], 0.0
    for line in streams["results"].splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("peak_kb"), int):
            peak_mb = record["peak_kb"] / 1024
        elif isinstance(record, dict):
            records.append(record)
    started = bool(records) and records[0] == {"started": True}
    args = (streams["stdout"], streams["stderr"], records[1:] if started else records, wall, peak_mb)
    if killed:
        return Execution(killed, None, *args)
    if not started:
        return Execution("sandbox_error", code, *args, detail="the bootstrap did not come up: "
                         + streams["stderr"][-300:].decode(errors="replace"))
    signum = -code if code < 0 else code - 128 if code > 128 else 0
    if signum == _SIGSYS:
        return Execution("violation", code, *args, detail="a forbidden system call (seccomp)")
    if signum in (_SIGKILL, _SIGXCPU):
        return Execution("timeout", code, *args, detail="CPU time limit")
    if code == MEMORY_EXIT or streams["stderr"].rstrip().endswith(b"MemoryError"):
        return Execution("memory", code, *args)
    return Execution("exited", code, *args)
