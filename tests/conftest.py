"""Shared fixtures: a tiny character-level Llama saved locally (nothing is downloaded)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from grpo.models.tiny import build_char_tokenizer, build_tiny_llama, save_model_dir

# OMP_NUM_THREADS wins when set: on a loaded 2-core machine two spinning OpenMP threads per test
# process make a tiny forward pass ~100x slower than one thread.
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight tiny Llama (hidden 32, 2 layers) with the arithmetic character tokenizer."""
    path = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = build_char_tokenizer()
    model = build_tiny_llama(tokenizer, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, seed=0)
    save_model_dir(model, tokenizer, path)
    return path
