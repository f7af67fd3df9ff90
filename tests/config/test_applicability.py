"""Keys the chosen algorithm does not read are refused when the user set them, and only then."""

from __future__ import annotations

from pathlib import Path

import pytest

from grpo.cli import main
from grpo.config.applicability import applicable_overrides, refuse_unused, unused_key, user_keys
from grpo.config.load import ConfigError


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["algorithm=dpo", "algo.advantage=rloo"], "algo.advantage does not apply to algorithm=dpo: remove it"),
        (["algorithm=ppo", "algo.std=population"], "algo.std does not apply to algorithm=ppo: remove it"),
        (["algorithm=ppo", "algo.overlong=mask"], "algo.overlong does not apply to algorithm=ppo: remove it"),
        (["ppo.gamma=0.9"], "ppo.gamma does not apply to algorithm=grpo: remove it"),
        (["algorithm=grpo", "dpo.beta=0.2"], "dpo.beta does not apply to algorithm=grpo: remove it"),
    ],
)
def test_unused_keys_on_the_command_line_are_one_line_exit_2(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["train", *argv, f"log.output_dir={tmp_path / 'runs'}"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()


def test_keys_of_the_user_config_file_count_but_the_embedded_defaults_do_not(tmp_path: Path):
    path = tmp_path / "run.yaml"
    path.write_text("algorithm: dpo\nalgo:\n  eps: 0.3\n  ref_refresh_every: 5\n")
    with pytest.raises(ConfigError, match=r"^algo.eps does not apply to algorithm=dpo"):
        refuse_unused("dpo", user_keys(path, []))
    refuse_unused("dpo", user_keys(None, ["algorithm=dpo"]))  # the embedded default sets algo.* keys: fine
    refuse_unused("dpo", user_keys(None, ["algo.ref_refresh_every=5", "rollout.group_size=4"]))


def test_every_unused_key_is_named_in_one_line():
    with pytest.raises(ConfigError) as error:
        refuse_unused("dpo", {"algo.eps", "ppo.lam", "optim.lr"})
    assert str(error.value) == "algo.eps does not apply to algorithm=dpo: remove it (and 1 more: ppo.lam)"


def test_sections_and_compare_overrides():
    assert unused_key("grpo", "ppo") and unused_key("dpo", "algo.beta") and not unused_key("ppo", "algo.beta")
    overrides = ["algo.advantage=rloo", "ppo.critic=separate", "optim.lr=1e-3", "dpo.loss=ipo"]
    assert applicable_overrides("grpo", overrides) == ["algo.advantage=rloo", "optim.lr=1e-3"]
    assert applicable_overrides("ppo", overrides) == ["ppo.critic=separate", "optim.lr=1e-3"]
    assert applicable_overrides("dpo", overrides) == ["optim.lr=1e-3", "dpo.loss=ipo"]
