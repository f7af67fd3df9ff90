"""Does TRL's `GRPOTrainer` run in its vLLM colocate mode on this CPU? (docs/performance.md, issue 10)

The same settings as `grpo bench step --model small` (the 33.6M random-weight Llama, 4 prompts x 8,
32 new tokens, beta 0.04), plus ``use_vllm=True, vllm_mode="colocate"``. Prints each step's seconds,
or TRL's error. Run it in the vLLM environment with TRL installed:

    .venv-vllm/bin/pip install -c .venv-vllm/torch-pin.txt "trl>=1.16,<1.17" "transformers<5.20"
    .venv-vllm/bin/python benchmarks/trl_vllm_probe.py --steps 3
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import traceback
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # the engine in this process, as TRL's colocate mode wants
    for key, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": "29533"}.items():
        os.environ.setdefault(key, value)  # TRL's colocate mode starts vLLM's external launcher
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from grpo.bench.common import arithmetic_examples, model_dir
    from grpo.models.load import load_tokenizer
    from grpo.rewards import exact_answer

    tmp = Path(tempfile.mkdtemp())
    path = model_dir("small", tmp)
    examples = arithmetic_examples(4 * (args.steps + 2), seed=1)
    dataset = Dataset.from_list([{"prompt": e.prompt, "answer": e.answer} for e in examples])

    def reward(completions: list[str], answer: list[str], **_: object) -> list[float]:
        return [0.0 if value is None else value for value in exact_answer(completions, answer=answer)]

    config = GRPOConfig(
        output_dir=str(tmp / "trl"), per_device_train_batch_size=32, num_generations=8, max_completion_length=32,
        temperature=1.0, top_p=1.0, top_k=0, beta=0.04, epsilon=0.2, learning_rate=3e-4,
        lr_scheduler_type="constant", max_steps=args.steps, logging_steps=1, report_to="none", use_cpu=True,
        save_strategy="no", seed=0, bf16=False, disable_tqdm=True, use_vllm=True, vllm_mode="colocate",
        vllm_gpu_memory_utilization=0.1, vllm_max_model_length=128, vllm_enable_sleep_mode=False,
    )
    times: list[float] = []

    class StepTimes(TrainerCallback):
        def on_step_begin(self, *_: object, **__: object) -> None:
            self.start = time.perf_counter()

        def on_step_end(self, *_: object, **__: object) -> None:
            times.append(time.perf_counter() - self.start)

    trainer = GRPOTrainer(model=str(path), reward_funcs=reward, args=config, train_dataset=dataset,
                          processing_class=load_tokenizer(path))
    trainer.add_callback(StepTimes())
    try:
        trainer.train()
    except Exception:  # noqa: BLE001 - the probe's answer is the error itself
        traceback.print_exc()
        print(f"TRL vLLM colocate: failed after {len(times)} steps")
        return 1
    print(f"TRL vLLM colocate: step seconds {[round(t, 3) for t in times]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
