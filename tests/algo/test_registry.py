"""The registry contract: unique names, helpful lookup errors, one signature per table."""

import inspect

import pytest
import torch

import grpo.algo as algo
from grpo.algo.registry import Registry, UnknownNameError

TABLES = {
    "ADVANTAGE_ESTIMATORS": ("grpo", "grpo_batch_std", "dr_grpo", "rloo", "reinforce_pp"),
    "RATIO_LEVELS": ("token", "sequence"),
    "POLICY_LOSSES": ("clip",),
    "KL_ESTIMATORS": ("k1", "k2", "k3"),
    "LOSS_AGGREGATIONS": ("seq_mean_token_mean", "token_mean", "seq_mean_token_sum_norm", "bnpo"),
    "PREFERENCE_LOSSES": ("dpo", "ipo", "hinge"),
    "KL_PLACEMENTS": ("loss", "reward"),
    "OVERLONG_POLICIES": ("none", "mask", "soft_penalty"),
}


def _fresh() -> Registry:
    table = Registry("toy function", ("x",))

    @table.register("double")
    def double(x: int) -> int:
        return 2 * x

    return table


def test_register_get_names_contains():
    table = _fresh()
    assert table.get("double")(3) == 6
    assert table.names() == ("double",)
    assert "double" in table and "triple" not in table
    assert len(table) == 1


def test_duplicate_name_is_refused():
    table = _fresh()
    with pytest.raises(ValueError, match="'double' is already registered"):

        @table.register("double")
        def other(x: int) -> int:
            return x


def test_wrong_parameters_are_refused():
    table = _fresh()
    with pytest.raises(TypeError, match="must take parameters"):

        @table.register("add")
        def add(x: int, y: int) -> int:
            return x + y


def test_unknown_name_lists_valid_names_and_closest_match():
    with pytest.raises(UnknownNameError) as caught:
        algo.ADVANTAGE_ESTIMATORS.get("grop")
    assert str(caught.value) == (
        "unknown advantage estimator 'grop'; did you mean 'grpo'? "
        "valid: grpo, grpo_batch_std, dr_grpo, rloo, reinforce_pp"
    )
    # Callers may catch it either way.
    assert isinstance(caught.value, KeyError) and isinstance(caught.value, ValueError)


def test_unknown_name_without_close_match_still_lists_names():
    with pytest.raises(KeyError) as caught:
        algo.KL_ESTIMATORS.get("zzzzzz")
    assert str(caught.value) == "unknown KL estimator 'zzzzzz'; valid: k1, k2, k3"


@pytest.mark.parametrize("table_name", sorted(TABLES))
def test_tables_hold_the_documented_names(table_name):
    # The trainer and config validation are written against these names.
    assert getattr(algo, table_name).names() == TABLES[table_name]


@pytest.mark.parametrize("table_name", sorted(TABLES))
def test_every_entry_has_the_table_signature(table_name):
    table = getattr(algo, table_name)
    for name in table.names():
        fn = table.get(name)
        assert tuple(inspect.signature(fn).parameters) == table.params, (table_name, name)
        assert inspect.signature(fn).return_annotation is not inspect.Signature.empty, (table_name, name)
        assert fn.__doc__ and len(fn.__doc__.splitlines()) > 3, (table_name, name)  # formula + paper


def _canonical_arguments(table_name: str) -> tuple:
    """Tiny valid inputs for each table: N = 4 completions (B = 2, G = 2), T = 3."""
    n, t = 4, 3
    logprobs = -torch.rand(n, t)
    mask = torch.ones(n, t, dtype=torch.bool)
    return {
        "ADVANTAGE_ESTIMATORS": (
            algo.AdvantageInputs(torch.tensor([1.0, 0.0, 0.0, 1.0]), torch.ones(n, dtype=torch.bool), 2),
        ),
        "RATIO_LEVELS": (logprobs, logprobs - 0.1, mask),
        "POLICY_LOSSES": (torch.zeros(n, t), torch.ones(n), mask, 0.2, 0.2, None),
        "KL_ESTIMATORS": (logprobs, logprobs - 0.1),
        "LOSS_AGGREGATIONS": (torch.ones(n, t), mask, algo.LossNormalizer(n, n * t, t)),
        "PREFERENCE_LOSSES": (torch.ones(n), torch.zeros(n), 0.1),
        "KL_PLACEMENTS": (0.04,),
        "OVERLONG_POLICIES": (torch.ones(n), mask, mask.sum(1), torch.zeros(n, dtype=torch.bool), t, 1, 1.0),
    }[table_name]


@pytest.mark.parametrize("table_name", sorted(TABLES))
def test_every_entry_runs_on_the_table_inputs(table_name):
    table = getattr(algo, table_name)
    args = _canonical_arguments(table_name)
    for name in table.names():
        result = table.get(name)(**dict(zip(table.params, args, strict=True)))
        value = result.per_token_loss if table_name == "POLICY_LOSSES" else result
        value = value[0] if table_name == "PREFERENCE_LOSSES" else value
        value = value.rewards if table_name == "OVERLONG_POLICIES" else value
        value = torch.tensor([value.in_loss, value.in_reward]) if table_name == "KL_PLACEMENTS" else value
        assert isinstance(value, torch.Tensor) and torch.isfinite(value).all(), (table_name, name)
