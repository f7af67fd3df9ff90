"""The training methods by name: `algorithm: grpo | ppo | dpo` looks its builder up in `METHODS`.

Each method builds its step function from the same models, reward and prompt stream; `train` then
hands it to the shared `run_loop`. Nothing outside this table branches on the method's name.
"""

from __future__ import annotations

from grpo.trainers.dpo import build_dpo
from grpo.trainers.method import Method, build_grpo
from grpo.trainers.ppo import build_ppo

METHODS: dict[str, Method] = {
    "grpo": Method(build_grpo, lambda config: config.algo.beta > 0),
    "ppo": Method(build_ppo, lambda config: config.algo.beta > 0),
    "dpo": Method(build_dpo, lambda config: True),  # DPO's loss is defined against the reference
}
