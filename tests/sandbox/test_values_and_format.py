"""Comparison by value with strict types, and test suites read from both formats (no sandbox needed)."""

from __future__ import annotations

import pytest

from grpo.sandbox.tests_format import SuiteFormatError, parse_suite, split_test_code
from grpo.sandbox.values import Opaque, decode, encode, same, same_text


def roundtrip(value):
    return decode(encode(value))


@pytest.mark.parametrize("value", [None, True, 3, 10**40, 2.5, "x", [1, (2, 3)], {"a": [1]}, {1, 2}, frozenset({3})])
def test_plain_values_survive_the_wall(value):
    assert same(roundtrip(value), value)


def test_strict_types():
    assert not same(True, 1) and not same(1, True)
    assert not same("1", 1)
    assert not same((1, 2), [1, 2])  # an expectation written in Python keeps its type
    assert same((1, 2), [1, 2], json_expected=True)  # JSON has no tuples
    assert not same(Opaque("Yes"), 3)


def test_float_tolerance_and_int_for_float():
    assert same(0.1 + 0.2, 0.3) and same(3, 3.0) and not same(3.1, 3.0)
    assert not same(3.0, 3)  # a float where an int is expected is a different type


def test_malformed_tags_decode_to_opaque_never_raise():
    for data in ({"t": "int", "v": "x"}, {"t": "list", "v": 3}, "junk", {"t": "set", "v": [{"t": "list", "v": []}]},
                 {"t": "dict", "v": [[{"t": "list", "v": []}, {"t": "none"}]]}):
        assert isinstance(decode(data), Opaque)


def test_stdout_comparison_ignores_trailing_space_only():
    assert same_text("3 \n\n", "3\n") and not same_text("3\n4\n", "3\n") and not same_text("03", "3")
    assert same_text("0.3333333", "0.33333333", tolerance=1e-6)


def test_asserts_become_pairs_and_the_rest_stays_as_code():
    code = ("import math\ndef check(candidate):\n    assert candidate([1, 2]) == 3\n"
            "    assert abs(candidate([0.5]) - 0.5) < 1e-6\n    assert candidate([])\n    assert not candidate([0])\n"
            "    assert sorted(candidate([3])) == [3]\n")
    calls, residual = split_test_code(code, "f")
    assert [(c.args, c.expected, c.check) for c in calls] == [
        (([1, 2],), 3, "equal"), (([0.5],), 0.5, "close"), (([],), True, "true"), (([0],), False, "false")]
    assert "sorted(candidate([3]))" in residual and "candidate([1, 2])" not in residual


def test_fully_converted_tests_leave_no_residual():
    assert split_test_code("assert f(1) == 2\nassert f(2) == 3\n", "f")[1] == ""


def test_formats():
    mbpp = parse_suite({"entry_point": "f", "test_list": ["assert f(1) == 2"]})
    pairs = parse_suite({"entry_point": "f", "cases": [{"input": [1], "output": 2}]})
    stdio = parse_suite({"inputs": ["1\n"], "outputs": ["2\n"]})
    apps = parse_suite({"input_output": '{"inputs": ["1\\n"], "outputs": ["2\\n"]}'})
    assert mbpp.calls[0].args == pairs.calls[0].args == (1,)
    assert stdio.kind == apps.kind == "stdio" and stdio.size == 1


@pytest.mark.parametrize("bad", [[], {"cases": [{"input": 1}]}, {"entry_point": "f"}, {"test": "assert f(1) == 2"},
                                 {"entry_point": "f", "test": "def ("}])
def test_malformed_suites_name_the_problem(bad):
    with pytest.raises(SuiteFormatError):
        parse_suite(bad)


def test_only_plain_data_is_sent_into_the_sandbox():
    for value in (object(), [1, {2: print}], bytes(3)):
        with pytest.raises(ValueError, match="plain data only"):
            encode(value)
