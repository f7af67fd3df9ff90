"""Exact resume: a run killed with SIGKILL at a random step and resumed ends bitwise where an
uninterrupted run ends; SIGTERM stops cleanly with a resume hint; a corrupt checkpoint is refused."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

import grpo

DRIVER = Path(__file__).with_name("train_driver.py")
STEPS = 10
TIMING_FIELDS = {"step_time", "generation_time", "generation_tokens_per_s"}


def run_args(model_dir: Path, out: Path, name: str) -> list[str]:
    return [f"model.path={model_dir}", f"log.output_dir={out}", f"log.run_name={name}", f"optim.steps={STEPS}",
            "rollout.prompts_per_step=4", "rollout.group_size=4", "rollout.max_new_tokens=8", "task.test_size=8",
            "task.slice_size=20", "log.eval_every=4", "log.samples_every=3", "checkpoint.every=2", "checkpoint.keep=2",
            "optim.lr=1e-2", "log.progress=false", "log.report=false"]


def env(sleep: float = 0.0) -> dict[str, str]:
    src = str(Path(grpo.__file__).parents[1])
    return {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "OMP_NUM_THREADS": "1", "GRPO_TEST_REWARD_SLEEP": str(sleep)}


def driver(*argv: str, sleep: float = 0.0) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(DRIVER), "train", *argv], env=env(sleep),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> str:
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    return out


def last_step(metrics: Path) -> int:
    if not metrics.is_file():
        return -1
    steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines() if line.endswith("}")]
    return max(steps, default=-1)


def rows(run: Path, name: str) -> list[dict]:
    parsed = [json.loads(line) for line in (run / name).read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in TIMING_FIELDS} for row in parsed]


def weights(run: Path) -> dict:
    return load_file(str(run / "final" / "model.safetensors"))


@pytest.fixture(scope="module")
def reference_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reference")
    finish(driver(*run_args(tiny_model_dir, out, "ref")))
    return out / "ref"


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sigkill_at_a_random_step_then_resume_is_bitwise_identical(seed, reference_run, tiny_model_dir, tmp_path):
    kill_after = random.Random(seed).randint(1, STEPS - 2)
    run = tmp_path / "run"
    proc = driver(*run_args(tiny_model_dir, tmp_path, "run"), sleep=0.03)
    while last_step(run / "metrics.jsonl") < kill_after and proc.poll() is None:
        time.sleep(0.005)
    time.sleep(random.Random(seed).uniform(0.0, 0.05))  # land anywhere inside the next step (or its save)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (run / "final").exists()
    finish(driver("--resume", str(run)))
    reference, resumed = weights(reference_run), weights(run)
    assert reference.keys() == resumed.keys()
    for key in reference:
        assert reference[key].equal(resumed[key]), key
    assert rows(run, "metrics.jsonl") == rows(reference_run, "metrics.jsonl")
    assert [row["step"] for row in rows(run, "metrics.jsonl")] == list(range(STEPS + 1))
    assert rows(run, "samples.jsonl") == rows(reference_run, "samples.jsonl")


@pytest.mark.slow
def test_sigterm_finishes_the_step_saves_and_exits_0_with_a_resume_hint(reference_run, tiny_model_dir, tmp_path):
    run = tmp_path / "run"
    proc = driver(*run_args(tiny_model_dir, tmp_path, "run"), sleep=0.03)
    while last_step(run / "metrics.jsonl") < 3 and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    out = finish(proc)
    stopped = last_step(run / "metrics.jsonl")
    assert stopped < STEPS
    assert (f"stopped by SIGTERM after step {stopped}; checkpoint saved to "
            f"{run / 'checkpoints' / f'step-{stopped:08d}'}; resume with: grpo train --resume {run}") in out
    finish(driver("--resume", "latest", f"log.output_dir={tmp_path}"))
    for key, value in weights(reference_run).items():
        assert value.equal(weights(run)[key]), key
    assert rows(run, "metrics.jsonl") == rows(reference_run, "metrics.jsonl")


def test_resume_refuses_a_corrupt_checkpoint_and_names_the_previous(reference_run, tmp_path):
    from grpo.cli import main

    run = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(reference_run), str(run)], check=True)
    newest = run / "checkpoints" / f"step-{STEPS:08d}"
    (newest / "optimizer.safetensors").write_bytes(b"garbage")
    err_file = tmp_path / "err"
    with err_file.open("w") as handle, pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "stderr", handle)
        code = main(["train", "--resume", str(run)])
    assert code == 2
    assert err_file.read_text() == (
        f"grpo train: error: checkpoint {newest} is corrupt: optimizer.safetensors fails its sha256 check; resume "
        f"from the previous one instead: grpo train --resume {run / 'checkpoints' / f'step-{STEPS - 2:08d}'}\n"
    )


def test_resuming_from_an_older_checkpoint_sets_newer_ones_aside(reference_run, tmp_path):
    from grpo.cli import main

    run = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(reference_run), str(run)], check=True)
    older = run / "checkpoints" / f"step-{STEPS - 2:08d}"
    assert main(["train", "--resume", str(older), "log.progress=false"]) == 0
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == [f"abandoned-step-{STEPS:08d}", f"step-{STEPS - 2:08d}", f"step-{STEPS:08d}"]
    assert [row["step"] for row in rows(run, "metrics.jsonl")] == list(range(STEPS + 1))
