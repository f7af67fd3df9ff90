"""`grpo` CLI with a graded toy reward, for subprocess tests that need weights to actually move.

A random tiny model never solves arithmetic, so exact-answer rewards are all 0 and GRPO leaves the
weights alone; this reward (share of '1' characters) varies within every group. Usage:
`python train_driver.py train [--resume RUN_DIR] key=value ...`, exactly like the `grpo` command.
"""

from __future__ import annotations

import os
import sys
import time

import torch

import grpo.trainers.train as train_module
from grpo.cli import main


def ones_share(completions: list[str], **_: object) -> list[float]:
    """Share of '1' characters; sleeps GRPO_TEST_REWARD_SLEEP seconds so a test can kill mid-run."""
    time.sleep(float(os.environ.get("GRPO_TEST_REWARD_SLEEP", "0")))
    return [text.count("1") / max(1, len(text)) for text in completions]


def main_with_toy_reward(argv: list[str]) -> int:
    torch.set_num_threads(1)  # bitwise comparisons need the same reduction order in every process
    original = train_module.train
    train_module.train = lambda config, **kwargs: original(config, reward_fn=ones_share, **kwargs)
    return main(argv)


if __name__ == "__main__":
    sys.exit(main_with_toy_reward(sys.argv[1:]))
