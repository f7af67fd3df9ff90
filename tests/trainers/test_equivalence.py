"""Two ranks compute the gradient of one process holding the whole batch, under DDP and under FSDP2.

For GRPO (every loss aggregation but bnpo, with the even split of a plain step and the uneven split
that dynamic sampling leaves), PPO (value head and separate critic) and DPO (online and offline, with
and without LoRA), the gradient just before the optimiser step on 2 CPU ranks (gloo) must equal the
single-process gradient of the same fixed rollouts to 1e-5 relative, parameter by parameter. All
cases run in one single-process launch and one torchrun launch (tests/trainers/equivalence_driver.py).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

DRIVER = Path(__file__).with_name("equivalence_driver.py")
STRATEGIES = ("ddp", "fsdp")


@pytest.fixture(scope="module")
def gradients(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory, torchrun) -> Path:
    out = tmp_path_factory.mktemp("equivalence")
    single = subprocess.run([sys.executable, str(DRIVER), str(tiny_model_dir), str(out), "single"],
                            capture_output=True, text=True, env=torchrun.env, timeout=900)
    assert single.returncode == 0, single.stderr[-3000:]
    torchrun.run(str(DRIVER), str(tiny_model_dir), str(out), ",".join(STRATEGIES), timeout=900)
    return out


def _cases() -> list[str]:
    sys.path.insert(0, str(DRIVER.parent))
    from equivalence_driver import CASES

    return sorted(CASES)


@pytest.mark.slow
@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("case", _cases())
def test_two_ranks_give_the_single_process_gradient(gradients: Path, case: str, strategy: str):
    single = torch.load(gradients / "single" / f"{case}.pt")
    split = torch.load(gradients / strategy / f"{case}.pt")
    assert single and set(split) == set(single)
    for name, expected in single.items():
        assert expected.norm() > 0, f"{name} got no gradient: the case would prove nothing"
        error = float((split[name] - expected).norm() / expected.norm())
        assert error <= 1e-5, f"{name}: relative error {error:.2e}"
