"""Does TRL's `GRPOTrainer` run in its vLLM colocate mode on this CPU? (docs/performance.md, issue 10)

TRL's trainer exactly as `grpo bench step --model small` builds it (the 33.6M random-weight Llama,
4 prompts x 8, 32 new tokens, beta 0.04), plus ``use_vllm=True, vllm_mode="colocate"``. Prints each
step's seconds, or TRL's error. Run it in the vLLM environment with TRL installed:

    .venv-vllm/bin/pip install -c .venv-vllm/torch-pin.txt "trl>=1.16,<1.17" "transformers<5.20"
    .venv-vllm/bin/python benchmarks/trl_vllm_probe.py --steps 3
"""

from __future__ import annotations

import argparse
import os
import tempfile
import traceback
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    steps = parser.parse_args().steps
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # the engine in this process, as TRL's colocate mode wants
    for key, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": "29533"}.items():
        os.environ.setdefault(key, value)  # TRL's colocate mode starts vLLM's external launcher
    from grpo.bench import options
    from grpo.bench.common import model_dir
    from grpo.bench.step import PhaseClock, trl_step_callback, trl_trainer

    bench = argparse.ArgumentParser()
    options.step(bench)
    args = bench.parse_args(["--model", "small"])  # the benchmark's own defaults
    tmp = Path(tempfile.mkdtemp())
    clock, times = PhaseClock(), []
    trainer = trl_trainer(model_dir(args.model, tmp), args, tmp / "trl", steps, clock, use_vllm=True,
                          vllm_mode="colocate", vllm_gpu_memory_utilization=0.1, vllm_max_model_length=128,
                          vllm_enable_sleep_mode=False)
    trainer.add_callback(trl_step_callback(clock, times, []))
    try:
        trainer.train()
    except Exception:  # noqa: BLE001 - the probe's answer is the error itself
        traceback.print_exc()
        print(f"TRL vLLM colocate: failed after {len(times)} steps")
        return 1
    print(f"TRL vLLM colocate: step seconds {[round(t['step_s'], 3) for t in times]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
