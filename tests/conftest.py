"""Shared fixtures: a tiny character-level Llama saved locally (nothing is downloaded)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from grpo.models.tiny import build_char_tokenizer, build_tiny_llama, save_model_dir

# OMP_NUM_THREADS wins when set: on a loaded 2-core machine two spinning OpenMP threads per test
# process make a tiny forward pass ~100x slower than one thread. Under pytest-xdist (`make test` runs
# one worker per core) each worker, and every process it starts, gets one thread.
# A vLLM engine would bind its thread to a core chosen without regard to the other worker's: leave
# the placement to the OS.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight tiny Llama (hidden 32, 2 layers) with the arithmetic character tokenizer."""
    path = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = build_char_tokenizer()
    model = build_tiny_llama(tokenizer, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, seed=0)
    save_model_dir(model, tokenizer, path)
    return path


class Torchrun:
    """Launches `python -m torch.distributed.run` on 2 CPU ranks, each on a free port and one thread."""

    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def command(self, *args: str) -> list[str]:
        with socket.socket() as probe:  # a port no other test or session holds
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2", f"--master-port={port}", *args]

    def run(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        """Run to the end and fail the test with the ranks' own error, not only torchrun's summary."""
        done = subprocess.run(self.command(*args), capture_output=True, text=True, env=self.env, timeout=timeout)
        assert done.returncode == 0, failure_excerpt(done.stderr)
        return done


def failure_excerpt(stderr: str, size: int = 4000) -> str:
    """The part of a failed launch's stderr that says why: from the first error a rank printed."""
    starts = [stderr.find(mark) for mark in ("Traceback", "terminate called", "Error", "error:")]
    first = min((start for start in starts if start >= 0), default=max(0, len(stderr) - size))
    return stderr[first:first + size]


@pytest.fixture(scope="session")
def torchrun() -> Torchrun:
    return Torchrun()


GSM8K_ROWS = 40


def gsm8k_rows(count: int = GSM8K_ROWS, seed: int = 0) -> list[dict[str, str]]:
    """GSM8K-format rows (question, worked answer ending in "#### N") a human can check."""
    import random

    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        a, b = rng.randint(2, 30), rng.randint(2, 30)
        rows.append({"question": f"Tom has {a} apples and buys {b} more. How many apples does he have?",
                     "answer": f"Tom has {a} + {b} = {a + b} apples.\n#### {a + b}"})
    return rows


@pytest.fixture(scope="session")
def gsm8k_jsonl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import json

    path = tmp_path_factory.mktemp("data") / "gsm8k.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in gsm8k_rows()))
    return path


@pytest.fixture(scope="session")
def bpe_tokenizer():
    """A byte-level BPE tokenizer trained here on R1-templated GSM8K-style text, with a chat template."""
    from grpo.models.tiny import build_bpe_tokenizer
    from grpo.rewards.format import R1_TEMPLATE

    corpus = [R1_TEMPLATE.format(prompt=row["question"]) + row["answer"] + "</think> <answer>12</answer>"
              for row in gsm8k_rows()]
    return build_bpe_tokenizer(corpus, vocab_size=400)


@pytest.fixture(scope="session")
def tiny_qwen2_dir(tmp_path_factory: pytest.TempPathFactory, bpe_tokenizer) -> Path:
    """A random-weight tiny Qwen2 (hidden 32, 2 layers) with the BPE tokenizer, saved like a hub model."""
    from grpo.models.tiny import build_tiny_qwen2

    path = tmp_path_factory.mktemp("tiny-qwen2")
    save_model_dir(build_tiny_qwen2(bpe_tokenizer), bpe_tokenizer, path)
    return path


@pytest.fixture(scope="session")
def tiny_llama_bpe_dir(tmp_path_factory: pytest.TempPathFactory, bpe_tokenizer) -> Path:
    """A random-weight tiny Llama with the BPE tokenizer (long enough context for R1 prompts)."""
    path = tmp_path_factory.mktemp("tiny-llama-bpe")
    model = build_tiny_llama(bpe_tokenizer, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
                             max_positions=512)
    save_model_dir(model, bpe_tokenizer, path)
    return path


@pytest.fixture
def one_thread():
    """Run a test's tiny-model work on one intra-op thread, then restore the setting. Models this small
    are thousands of tiny ops, and on a busy 2-core machine each op's thread barrier waits for a
    descheduled thread: measured 6 s on one thread vs 64 s on two for the Qwen2 LoRA run under load."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


VLLM_MISSING = "vllm is not installed in this venv; `make test-vllm` runs these tests in .venv-vllm"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `vllm` are skipped, with the reason, where the vllm package is not installed."""
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        for item in items:
            if "vllm" in item.keywords:
                item.add_marker(pytest.mark.skip(reason=VLLM_MISSING))


def _engine(path: Path, max_model_len: int):
    from grpo.rollout.vllm_backend import EngineOptions, start_engine

    return start_engine(EngineOptions(str(path), "float32", max_model_len, kv_cache_memory_gb=0.25))


@pytest.fixture(scope="session")
def builtin_vllm():
    """(engine, model dir) of the built-in 1.05M-parameter model: one engine per pytest session."""
    from grpo.models.load import resolve_model_path

    path = resolve_model_path("builtin:arith-warmstart")
    return _engine(path, 64), path


@pytest.fixture(scope="session")
def small_vllm(tmp_path_factory: pytest.TempPathFactory):
    """(engine, model dir) of the random-weight 33.6M-parameter Llama of the benchmarks."""
    from grpo.bench.common import model_dir

    path = model_dir("small", tmp_path_factory.mktemp("bench-models"))
    return _engine(path, 128), path


@pytest.fixture(autouse=True)
def _small_slices(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Held-out slices of at most 40 expressions in tests (a run scores 1,000 per slice, twice), unless
    the test is marked `full_slices`; subprocess-based tests pass task.slice_size themselves."""
    if "full_slices" in request.keywords:
        return
    from grpo.tasks.arithmetic import ArithmeticTask

    original = ArithmeticTask.test_slices
    monkeypatch.setattr(ArithmeticTask, "test_slices", lambda self, size: original(self, min(size, 40)))
