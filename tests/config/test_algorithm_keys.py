"""Every algorithm-family key is reachable from YAML, and impossible combinations are one-line errors."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest

from grpo.config import load_config
from grpo.config.load import ConfigError
from grpo.config.schema import RunConfig

YAML = """\
algorithm: ppo
algo:
  kl_placement: loss
  ref_refresh_every: 5
  entropy_coef: 0.01
  overlong: soft_penalty
  overlong_buffer: 6
  overlong_penalty: 0.5
  eps: 0.1
  eps_high: 0.28
  dual_clip: 3.0
  ratio_level: sequence
  loss_aggregation: token_mean
  advantage: rloo
ppo:
  critic: separate
  gamma: 0.99
  lam: 0.9
  value_clip: 0.3
  vf_coef: 0.5
  whiten_advantages: false
dpo:
  loss: ipo
  beta: 0.2
  source: offline
  data: pairs.jsonl
"""


def test_every_new_key_is_read_from_yaml(tmp_path: Path):
    path = tmp_path / "run.yaml"
    path.write_text(YAML)
    config = load_config(path)
    assert config.algorithm == "ppo"
    algo = config.algo
    assert (algo.kl_placement, algo.ref_refresh_every, algo.entropy_coef) == ("loss", 5, 0.01)
    assert (algo.overlong, algo.overlong_buffer, algo.overlong_penalty) == ("soft_penalty", 6, 0.5)
    assert (algo.eps_low, algo.clip_high, algo.dual_clip, algo.ratio_level) == (0.1, 0.28, 3.0, "sequence")
    assert config.ppo.model_dump() == {"critic": "separate", "gamma": 0.99, "lam": 0.9, "value_clip": 0.3,
                                       "vf_coef": 0.5, "whiten_advantages": False}
    assert config.dpo.model_dump() == {"loss": "ipo", "beta": 0.2, "source": "offline", "data": "pairs.jsonl"}
    assert config.kl_placement == "loss"  # set explicitly, so PPO's own default does not apply


def test_dynamic_sampling_keys_from_overrides():
    config = load_config(overrides=["algo.dynamic_sampling=true", "algo.max_draws=3", "algo.overlong=mask"])
    assert (config.algo.dynamic_sampling, config.algo.max_draws, config.algo.overlong) == (True, 3, "mask")


@pytest.mark.parametrize("algorithm", ["ppo", "dpo"])
def test_the_default_run_s_grpo_only_keys_do_not_reach_other_algorithms(algorithm):
    assert load_config().algo.dynamic_sampling  # the embedded default run samples dynamically (GRPO only)
    config = load_config(overrides=[f"algorithm={algorithm}"])
    assert config.algorithm == algorithm and not config.algo.dynamic_sampling
    assert config.task == load_config().task  # the same task and budget
    assert config.optim == load_config().optim


@pytest.mark.parametrize(("algorithm", "placement"), [("grpo", "loss"), ("ppo", "reward"), ("dpo", "loss")])
def test_kl_placement_defaults_to_the_methods_convention(algorithm, placement):
    assert load_config(overrides=[f"algorithm={algorithm}"]).kl_placement == placement


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["algo.eps_high=0.1"], "algo.eps_high (0.1) must be >= algo.eps (0.2)"),
        (["algo.ref_refresh_every=5", "algo.beta=0"],
         "algo.ref_refresh_every (5) needs a reference model, but algo.beta=0 runs without one; "
         "set algo.beta > 0 or algo.ref_refresh_every=0"),
        (["algo.overlong=soft_penalty", "algo.overlong_buffer=30"],
         "algo.overlong_buffer (30) must be <= rollout.max_new_tokens (24)"),
        (["algorithm=ppo", "algo.dynamic_sampling=true"],
         "algo.dynamic_sampling applies to algorithm=grpo only (got algorithm=ppo)"),
        (["algorithm=dpo", "dpo.source=offline"],
         "dpo.source=offline needs dpo.data (a JSONL file of prompt, chosen, rejected)"),
        (["dpo.data=x.jsonl"], "dpo.data (x.jsonl) is read only with dpo.source=offline"),
        (["algo.kl_placement=rewards"],
         "config key 'algo.kl_placement': unknown KL placement 'rewards'; did you mean 'reward'? valid: loss, reward"),
        (["algo.overlong=truncate"], "config key 'algo.overlong': unknown overlong policy 'truncate'"),
        (["dpo.loss=ipoo"], "config key 'dpo.loss': unknown preference loss 'ipoo'; did you mean 'ipo'?"),
        (["algorithm=sac"], "config key 'algorithm': Input should be 'grpo', 'ppo' or 'dpo' (got 'sac')"),
        (["ppo.critic=shared"], "config key 'ppo.critic'"),
        (["ppo.lam=1.5"], "config key 'ppo.lam'"),
        (["algo.entropy_coef=-0.1"], "config key 'algo.entropy_coef'"),
        (["algo.max_draws=0"], "config key 'algo.max_draws'"),
    ],
)
def test_impossible_combinations_are_one_line_errors(overrides, message):
    with pytest.raises(ConfigError) as caught:
        load_config(overrides=overrides)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_method_table_matches_the_config_choices():
    from grpo.trainers.methods import METHODS

    assert set(METHODS) == set(typing.get_args(RunConfig.model_fields["algorithm"].annotation))
