"""Adversarial programs, one property per test: every attack is contained and the trainer survives.

Each test runs an attack through the pool (the API `grpo sandbox run` uses); the autouse fixture in
conftest.py then checks that no process and no file was left behind.
"""

from __future__ import annotations

import os
import sys
import sysconfig
import time

from grpo.sandbox.runner import Job, Limits


def run(pool, source: str, limits: Limits | None = None, stdin: bytes = b""):
    return pool.execute(Job("script", source, stdin=stdin), limits)


def test_bounded_fork_bomb_is_stopped_by_the_process_limit(pool):
    source = """
import os, time
made = 0
for _ in range(300):
    try:
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
        made += 1
    except OSError:
        break
print(made)
"""
    result = run(pool, source)
    assert result.status == "exited"
    assert int(result.stdout) < 64  # the rlimit (32 processes per sandbox) applies: we run as a non-root uid


def test_daemon_that_calls_setsid_does_not_survive(pool):
    source = """
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(60)
    os._exit(0)
print("parent done")
"""
    started = time.monotonic()
    result = run(pool, source)
    assert result.status == "exited" and result.stdout == b"parent done\n"
    assert time.monotonic() - started < 3  # the run ends with the parent; the daemon dies with the namespace


def test_infinite_loop_times_out(pool):
    result = run(pool, "while True:\n    pass\n", Limits(timeout_s=1.0, cpu_s=5))
    assert result.status == "timeout" and result.wall_s < 3


def test_sleeping_forever_times_out_on_the_wall_clock(pool):
    result = run(pool, "import time\ntime.sleep(1000)\n", Limits(timeout_s=1.0))
    assert result.status == "timeout"


def test_ten_gigabyte_allocation_is_refused(pool):
    result = run(pool, "x = bytearray(10 * 1024**3)\nprint('allocated')\n")
    assert result.status == "memory" and b"allocated" not in result.stdout


def test_five_gigabyte_file_is_cut_off(pool):
    source = """
chunk = b"x" * (1 << 20)
written = 0
try:
    with open("/tmp/big", "wb") as f:
        for _ in range(5 * 1024):
            f.write(chunk)
            written += 1
except OSError as error:
    print("stopped", written, error.errno)
"""
    result = run(pool, source)
    assert result.stdout.startswith(b"stopped")
    assert int(result.stdout.split()[1]) <= 64


def test_socket_to_localhost_is_a_violation(pool):
    source = "import socket\ns = socket.create_connection(('127.0.0.1', 22), timeout=1)\nprint('connected')\n"
    result = run(pool, source)
    assert result.status == "violation" and b"connected" not in result.stdout


def test_environment_holds_nothing_of_the_trainer(pool, monkeypatch):
    monkeypatch.setenv("GRPO_TEST_SECRET", "hunter2-secret")
    source = """
import os
print(dict(os.environ))
for pid in os.listdir('/proc'):
    if pid.isdigit():
        try:
            print(open(f'/proc/{pid}/environ', 'rb').read())
        except OSError:
            pass
"""
    result = run(pool, source)
    assert result.status == "exited"
    assert b"hunter2" not in result.stdout and b"GRPO_TEST_SECRET" not in result.stdout
    assert b"PATH" in result.stdout  # the environment it got was built from scratch


def test_etc_shadow_cannot_be_read(pool):
    result = run(pool, "print(open('/etc/shadow').read())\n")
    assert result.exit_code != 0 and b"root:" not in result.stdout


def test_trainers_secret_file_cannot_be_read(pool, tmp_path):
    secret = tmp_path / "api-key.txt"
    secret.write_text("sk-very-secret")
    cwd_secret = os.path.abspath("pyproject.toml")
    source = f"""
for path in ({str(secret)!r}, {cwd_secret!r}, '/root/.bash_history', '/proc/1/root/etc/hostname'):
    try:
        print(open(path).read()[:50])
    except OSError as error:
        print('denied', path)
"""
    result = run(pool, source)
    assert b"sk-very-secret" not in result.stdout and b"[project]" not in result.stdout
    assert result.stdout.count(b"denied") == 4


def test_killing_the_parent_leaves_the_trainer_alive(pool):
    source = """
import os, signal
for target in (os.getppid(), 1, -1, os.getpid() - 1, os.getpid() + 1):
    try:
        os.kill(target, signal.SIGKILL)
    except OSError:
        pass
print("still here")
"""
    me = os.getpid()
    run(pool, source)
    assert os.getpid() == me
    os.kill(me, 0)  # the trainer is alive
    assert run(pool, "print(1)").stdout == b"1\n"  # and the pool still works


def test_files_in_the_trainers_working_directory_cannot_be_deleted(pool, tmp_path):
    victim = tmp_path / "keep.txt"
    victim.write_text("precious")
    here = os.path.abspath("pyproject.toml")
    source = f"""
import os, shutil
for path in ({str(victim)!r}, {here!r}):
    try:
        os.remove(path)
        print('removed', path)
    except OSError:
        print('kept')
shutil.rmtree({str(tmp_path)!r}, ignore_errors=True)
"""
    result = run(pool, source)
    assert b"removed" not in result.stdout
    assert victim.read_text() == "precious" and os.path.exists(here)


def test_site_packages_cannot_be_written(pool):
    targets = {sysconfig.get_paths()["purelib"], os.path.dirname(os.__file__)}
    source = f"""
for directory in {sorted(targets)!r} + ['/usr/lib/python3/dist-packages', '/usr/lib/python3.11']:
    try:
        with open(directory + '/grpo_evil.py', 'w') as f:
            f.write('x = 1')
        print('wrote', directory)
    except OSError:
        print('refused')
"""
    result = run(pool, source)
    assert b"wrote" not in result.stdout
    assert not any(os.path.exists(os.path.join(d, "grpo_evil.py")) for d in targets)


def test_running_bin_sh_is_a_violation(pool):
    result = run(pool, "import os\nos.execv('/bin/sh', ['/bin/sh', '-c', 'echo pwned'])\n")
    assert result.status == "violation" and b"pwned" not in result.stdout


def test_subprocess_shell_never_runs(pool):
    source = """
import subprocess
try:
    out = subprocess.run(['/bin/sh', '-c', 'echo pwned'], capture_output=True).stdout
    print(out)
except OSError as error:
    print('refused', error)
"""
    result = run(pool, source)
    assert b"pwned" not in result.stdout


def test_raising_its_own_limits_fails(pool):
    source = """
import resource
for limit in (resource.RLIMIT_AS, resource.RLIMIT_NPROC, resource.RLIMIT_CPU, resource.RLIMIT_FSIZE):
    soft, hard = resource.getrlimit(limit)
    try:
        resource.setrlimit(limit, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        print('raised', limit)
    except (ValueError, OSError):
        print('refused', soft == hard)
x = bytearray(2 * 1024**3)
"""
    result = run(pool, source)
    assert b"raised" not in result.stdout
    assert result.stdout.count(b"refused True") == 4
    assert result.status == "memory"


def test_new_namespaces_and_ptrace_are_violations(pool):
    for source in ("import ctypes\nctypes.CDLL(None).unshare(0x10000000)\nprint('unshared')\n",
                   "import ctypes\nctypes.CDLL(None).ptrace(16, 1, 0, 0)\nprint('attached')\n"):
        assert run(pool, source).status == "violation"


def test_trainer_process_survives_every_attack():
    assert sys.modules["grpo.sandbox.runner"] is not None
    os.kill(os.getpid(), 0)
