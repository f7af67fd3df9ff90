"""The trusted start of every sandboxed execution; runs INSIDE the sandbox, standard library only.

The trainer copies this file into the sandbox and starts it as `python -I -S boot.py job.json`. Until
the untrusted program starts, nothing untrusted has run in this process, so the order below is what
makes the limits binding: read the job, set every resource limit with soft = hard (an unprivileged
process can lower a hard limit but never raise it), close every inherited descriptor but 0-2 and the
results pipe, install the seccomp filter compiled by the trainer (no sockets, ptrace, new namespaces,
mounts or `execve` from here on), and only then run the program, in a child process so that its peak
memory can be measured. Results go to the results pipe as JSON lines of plain, type-tagged data (the
first, written before the program starts, says the sandbox came up); the program can write there too,
which gains it nothing: the verdict is decided by the trainer comparing those values with expected
outputs the sandbox never sees.

Modes: `script` runs the program as `__main__` on the stdin it was given; `function` runs the program
and then calls its entry point once per argument list; `tests` runs test code in which the candidate
is replaced by a table of outputs recorded from a `function` run.
"""

import ast
import json
import math
import os
import resource
import sys

MEMORY_EXIT = 120  # exit status when the program ran out of its address space (MemoryError)
_RLIMITS = {"cpu_s": "RLIMIT_CPU", "memory_bytes": "RLIMIT_AS", "file_bytes": "RLIMIT_FSIZE",
            "open_files": "RLIMIT_NOFILE", "processes": "RLIMIT_NPROC"}


def set_limits(limits):
    """Every configured rlimit with soft = hard, plus no core files."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    for key, name in _RLIMITS.items():
        value = limits.get(key)
        if value is not None:
            resource.setrlimit(getattr(resource, name), (int(value), int(value)))


def install_seccomp(path):
    """Load the trainer's compiled filter (raw BPF) for this process and every child it will have."""
    import ctypes

    with open(path, "rb") as handle:
        program = handle.read()

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    libc = ctypes.CDLL(None, use_errno=True)
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    if libc.prctl(38, 1, 0, 0, 0) != 0 or libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) != 0:  # NO_NEW_PRIVS, FILTER
        raise OSError(ctypes.get_errno(), "could not install the seccomp filter")


def encode(value, depth=0):
    """Plain data as tagged JSON; anything else becomes an opaque tag that never equals an expectation."""
    kind = type(value)
    if depth > 50:
        return {"t": "deep"}
    if value is None or kind is bool or kind is str:
        return {"t": kind.__name__ if value is not None else "none", "v": value}
    if kind is int:
        return {"t": "int", "v": str(value)}
    if kind is float:
        return {"t": "float", "v": value if math.isfinite(value) else repr(value)}
    if kind in (list, tuple, set, frozenset):
        items = [encode(item, depth + 1) for item in value]
        if kind in (set, frozenset):
            items.sort(key=lambda item: json.dumps(item, sort_keys=True))
        return {"t": kind.__name__, "v": items}
    if kind is dict:
        return {"t": "dict", "v": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in value.items()]}
    return {"t": "object", "v": kind.__name__}


def decode(data):
    """The inverse of `encode` for the types it writes (used for call arguments and recorded outputs)."""
    kind, value = data["t"], data.get("v")
    if kind in ("none", "bool", "str"):
        return value
    if kind == "int":
        return int(value)
    if kind == "float":
        return float(value)
    if kind in ("list", "tuple", "set", "frozenset"):
        return {"list": list, "tuple": tuple, "set": set, "frozenset": frozenset}[kind](decode(v) for v in value)
    if kind == "dict":
        return {decode(k): decode(v) for k, v in value}
    if kind == "raised":
        return _Raised(value)
    return _Opaque(value)


class _Raised:
    """A recorded call that raised: calling the candidate with those arguments raises again."""

    def __init__(self, name):
        self.name = name


class _Opaque:
    """A recorded output that was not plain data: equal to nothing."""

    def __init__(self, name):
        self.name = name

    def __eq__(self, other):
        return False

    __hash__ = None

    def __repr__(self):
        return f"<{self.name} object>"


_results_fd = -1


def emit(record):
    """One JSON line on the results descriptor."""
    os.write(_results_fd, (json.dumps(record) + "\n").encode())


def _error_name(error):
    return "MemoryError" if isinstance(error, MemoryError) else type(error).__name__


def run_script(job):
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    exec(compile(job["source"], "solution.py", "exec"), namespace)


def run_function(job):
    namespace = {"__name__": "solution", "__builtins__": __builtins__}
    exec(compile(job["source"], "solution.py", "exec"), namespace)
    fn = namespace.get(job["entry"])
    if not callable(fn):
        emit({"missing": job["entry"]})
        return
    for index, args in enumerate(job["calls"]):
        try:
            value = fn(*decode(args))
            emit({"i": index, "value": encode(value)})
        except Exception as error:  # noqa: BLE001 - the candidate's own failure, reported as data
            emit({"i": index, "error": _error_name(error)})


class _Missing(Exception):
    """A call whose output was not recorded yet; the trainer runs the candidate on it and retries."""


class _Placeholder:
    """Stands for an unrecorded output while test code is scanned for the calls it makes."""

    def __getattr__(self, name):
        return self

    def __call__(self, *args, **kwargs):
        return self

    def __getitem__(self, key):
        return self

    def __iter__(self):
        return iter(())

    def __len__(self):
        return 0

    def __bool__(self):
        return False

    def __eq__(self, other):
        return False

    __hash__ = None


class _SoftAsserts(ast.NodeTransformer):
    """`assert X` -> `__grpo_soft(lambda: X)`: while scanning, a failed check must not stop the scan."""

    def visit_Assert(self, node):
        call = ast.Call(func=ast.Name("__grpo_soft", ast.Load()),
                        args=[ast.Lambda(ast.arguments([], [], None, [], [], None, []), node.test)], keywords=[])
        return ast.copy_location(ast.Expr(call), node)


def run_tests(job):
    """Test code with `candidate` replaced by the recorded table; scanning mode records missing calls."""
    table = {key: decode(value) for key, value in job["table"]}
    scanning = job["scan"]
    needed = []

    def candidate(*args, **kwargs):
        if kwargs:
            raise TypeError("keyword arguments to the candidate are not supported by the grader")
        key = json.dumps(encode(list(args)), sort_keys=True)
        if key in table:
            if isinstance(table[key], _Raised):
                raise RuntimeError(f"the candidate raised {table[key].name}")
            return table[key]
        if scanning:
            needed.append(args)
            return _Placeholder()
        raise _Missing(key)

    def soft(check):
        try:
            check()
        except Exception:  # noqa: BLE001, S110 - scanning only collects calls
            pass

    tree = ast.parse(job["tests"], "tests.py")
    if scanning:
        tree = ast.fix_missing_locations(_SoftAsserts().visit(tree))
    namespace = {"__name__": "tests", "__grpo_soft": soft, "candidate": candidate, job["entry"]: candidate}
    try:
        exec(compile(tree, "tests.py", "exec"), namespace)
        check = namespace.get("check")
        if callable(check):
            check(candidate)
        emit({"tests": "passed"} if not scanning else {"tests": "scanned"})
    except _Missing as missing:
        emit({"tests": "missing", "key": str(missing)})
    except AssertionError:
        emit({"tests": "failed"} if not scanning else {"tests": "scanned"})
    except Exception as error:  # noqa: BLE001 - test code errors are reported as data
        emit({"tests": "error", "error": _error_name(error)})
    for args in needed:
        emit({"need": encode(list(args))})


MODES = {"script": run_script, "function": run_function, "tests": run_tests}


def run_child(job):
    """The program's process: run the mode, flush, and exit with the program's own status."""
    sys.argv = ["solution.py"]
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 3000))
    code = 0
    try:
        MODES[job["mode"]](job)
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 0 if stop.code is None else 1
    except MemoryError:
        os.write(2, b"MemoryError\n")
        code = MEMORY_EXIT
    except BaseException:  # noqa: BLE001 - the program's uncaught error: print it like Python would
        import traceback

        traceback.print_exc()
        code = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001
        code = code or 1
    os._exit(code & 0xFF)


def main():
    """Limits, descriptors, filter; then the program in a child, whose peak memory is reported."""
    global _results_fd
    with open(sys.argv[1], encoding="utf-8") as handle:
        job = json.load(handle)
    _results_fd = job["results_fd"]
    set_limits(job["limits"])
    os.closerange(3, _results_fd)
    os.closerange(_results_fd + 1, 1 << 16)
    if job.get("seccomp"):
        install_seccomp(os.path.join(os.path.dirname(sys.argv[1]), "filter.bpf"))
    emit({"started": True})
    pid = os.fork()
    if pid == 0:
        run_child(job)
    _, status, usage = os.wait4(pid, 0)
    emit({"peak_kb": usage.ru_maxrss})
    os._exit(128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status))


if __name__ == "__main__":
    main()
