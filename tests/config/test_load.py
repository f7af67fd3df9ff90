"""Loading configs: defaults, typed overrides, and one-line errors for bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from grpo.config import ConfigError, load_config
from grpo.config.load import dump_config, parse_yaml


def test_default_config_is_deepseekmath_grpo():
    config = load_config()
    assert (config.algo.eps, config.algo.beta, config.rollout.group_size) == (0.2, 0.04, 8)
    assert config.algo.kl_estimator == "k3" and config.algo.advantage == "grpo" and config.algo.mu == 1


def test_overrides_are_typed_and_nested():
    config = load_config(overrides=["optim.lr=3e-5", "rollout.group_size=4", "algo.eps_high=0.28", "log.run_name=x"])
    assert config.optim.lr == pytest.approx(3e-5)
    assert config.rollout.group_size == 4
    assert config.algo.clip_high == pytest.approx(0.28) and config.algo.eps_low == pytest.approx(0.2)
    assert config.log.run_name == "x"


def test_config_is_frozen():
    config = load_config()
    with pytest.raises(Exception, match="frozen"):
        config.optim.lr = 1.0


def test_yaml_file_and_round_trip(tmp_path: Path):
    path = tmp_path / "run.yaml"
    path.write_text("# launch: grpo train --config run.yaml\noptim:\n  steps: 7\n")
    config = load_config(path, ["seed=3"])
    assert config.optim.steps == 7 and config.seed == 3
    assert load_config(None, []).model_dump() != config.model_dump()
    assert parse_yaml(dump_config(config), "dump") == config.model_dump(mode="json")


ERRORS = [
    (["optim.lrr=1"], "unknown config key 'optim.lrr'; did you mean 'optim.lr'?"),
    (["modle.path=x"], "unknown config key 'modle'; did you mean 'model'?"),
    (["rollout.group_size=1"], "config key 'rollout.group_size': Input should be greater than or equal to 2 (got 1)"),
    (["algo.eps=0"], "config key 'algo.eps': Input should be greater than 0 (got 0)"),
    (["algo.eps=-0.1"], "config key 'algo.eps': Input should be greater than 0 (got -0.1)"),
    (["optim.lr=abc"], "config key 'optim.lr': Input should be a valid number"),
    (["algo.advantage=grop"], "config key 'algo.advantage': unknown advantage estimator 'grop'; did you mean 'grpo'?"),
    (["algo.kl_estimator=k4"], "config key 'algo.kl_estimator': unknown KL estimator 'k4'"),
    (["algo.eps_high=0.1"], "algo.eps_high (0.1) must be >= algo.eps (0.2)"),
    (["task.min_ops=4", "task.max_ops=3"], "task.min_ops (4) must be <= task.max_ops (3)"),
    (["optim"], "override 'optim' is not of the form key=value"),
    (["optim.lr.x=1"], "override 'optim.lr.x=1': 'lr' is a value, not a section"),
]


@pytest.mark.parametrize(("overrides", "message"), ERRORS)
def test_bad_overrides_give_one_line_errors(overrides: list[str], message: str):
    with pytest.raises(ConfigError) as caught:
        load_config(overrides=overrides)
    text = str(caught.value)
    assert text.startswith(message)
    assert "\n" not in text


def test_missing_file_and_bad_yaml(tmp_path: Path):
    with pytest.raises(ConfigError, match="config file not found: .*nope.yaml"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  lr: [1,\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:\d+: invalid YAML"):
        load_config(bad)
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(listed)
