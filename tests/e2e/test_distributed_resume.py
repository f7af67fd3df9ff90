"""kill -9 of one rank mid-run, then `--resume` on 2 ranks, ends bitwise where an uninterrupted run ends."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from grpo.config.schema import BUILTIN_MODEL
from grpo.models.load import resolve_model_path

STEPS, KILL_AFTER = 12, 4


def _train_args(out: Path, name: str, *extra: str) -> list[str]:
    # the built-in warm start, whose rewards vary within groups, so every step really moves the weights
    return ["-m", "grpo", "train", f"log.output_dir={out}", f"log.run_name={name}",
            f"optim.steps={STEPS}", "checkpoint.every=2", "rollout.prompts_per_step=4", "rollout.group_size=4",
            "rollout.max_new_tokens=8", "task.test_size=4", "task.slice_size=20", "log.eval_every=0",
            "log.progress=false", "log.report=false", "log.tensorboard=false", *extra]


def _rank_pid(parent: int, rank: int) -> int | None:
    """The worker process of `rank` among the children of the torchrun process `parent`."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat[1]) == parent and f"RANK={rank}".encode() in environ:
            return int(entry.name)
    return None


def _weights(run: Path) -> dict:
    return load_file(run / "final" / "model.safetensors")


@pytest.mark.slow
def test_kill_one_rank_then_resume_matches_the_uninterrupted_run(tmp_path: Path, torchrun):
    torchrun.run(*_train_args(tmp_path, "whole"))

    run = tmp_path / "killed"
    proc = subprocess.Popen(torchrun.command(*_train_args(tmp_path, "killed")), env=torchrun.env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while not (run / "checkpoints" / f"step-{KILL_AFTER:08d}" / "manifest.json").is_file():
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.02)
    victim = _rank_pid(proc.pid, 1)
    assert victim is not None
    os.kill(victim, 9)
    assert proc.wait(timeout=300) != 0  # torchrun reports the lost rank; the run did not finish
    assert not (run / "final").exists()
    saved = sorted(path.name for path in (run / "checkpoints").glob("step-*"))
    assert saved and int(saved[-1].removeprefix("step-")) <= STEPS - 4, saved  # steps are left to redo

    torchrun.run(*_train_args(tmp_path, "killed", "--resume", str(run)))
    expected, got = _weights(tmp_path / "whole"), _weights(run)
    base = load_file(resolve_model_path(BUILTIN_MODEL) / "model.safetensors")
    assert any(not bool((expected[name] == base[name]).all()) for name in expected), "training changed nothing"
    assert expected.keys() == got.keys()
    assert all(bool((expected[name] == got[name]).all()) for name in expected)
