"""Values crossing the sandbox wall, and the comparison that decides a test in the trainer's process.

Outputs come back as type-tagged JSON (`bootstrap.encode`): none, bool, int (as a decimal string, so
big integers survive), float, str, list, tuple, set, frozenset, dict, and `object` for anything else.
`decode` rebuilds plain Python values from them and nothing else: no class of the program's is ever
instantiated here, so no `__eq__` of the program's is ever called. `same` compares by value with
strict types: bool is not int, str is not bytes, a list is not a tuple (except that an expectation
written in JSON, which has no tuples, accepts either), `object` equals nothing, and floats are equal
within `tolerance` (absolute or relative, like `math.isclose`; an int result matches a float
expectation by value).
"""

from __future__ import annotations

import json
import math
from typing import Any

from grpo.sandbox.bootstrap import encode as _encode

FLOAT_TOLERANCE = 1e-6  # HumanEval's own float checks use abs(x - y) < 1e-6
MAX_DEPTH = 64


class Opaque:
    """An output that was not plain data (the program's own class); it equals nothing."""

    def __init__(self, name: str) -> None:
        self.name = str(name)[:100]

    def __repr__(self) -> str:
        return f"<{self.name} object>"


def encode(value: Any) -> dict:
    """Plain data as tagged JSON, by the bootstrap's own encoder (one format on both sides of the wall);
    ValueError for what cannot be sent into the sandbox (anything but plain data, or nested too deeply)."""
    data = _encode(value)
    if not _plain(data):
        raise ValueError(f"cannot send {type(value).__name__} {str(value)[:60]!r} into the sandbox (plain data only)")
    return data


def _plain(data: dict) -> bool:
    if data["t"] in ("object", "deep"):
        return False
    if data["t"] == "dict":
        return all(_plain(k) and _plain(v) for k, v in data["v"])
    if isinstance(data.get("v"), list):
        return all(_plain(item) for item in data["v"])
    return True


def key_of(args: list) -> str:
    """The table key of a call's argument list (the same string the bootstrap computes)."""
    return json.dumps(encode(list(args)), sort_keys=True)


def decode(data: Any, depth: int = 0) -> Any:
    """Plain Python from tagged JSON; malformed input becomes `Opaque` (never an exception)."""
    if not isinstance(data, dict) or depth > MAX_DEPTH:
        return Opaque("malformed")
    kind, value = data.get("t"), data.get("v")
    try:
        if kind == "none":
            return None
        if kind == "bool" and type(value) is bool:
            return value
        if kind == "str" and type(value) is str:
            return value
        if kind == "int" and type(value) is str and len(value) <= 5000:
            return int(value)
        if kind == "float" and type(value) in (int, float, str):
            return float(value)
        if kind in ("list", "tuple", "set", "frozenset") and type(value) is list:
            items = [decode(item, depth + 1) for item in value]
            return {"list": list, "tuple": tuple, "set": _set, "frozenset": _frozenset}[kind](items)
        if kind == "dict" and type(value) is list:
            return _dict([(decode(k, depth + 1), decode(v, depth + 1)) for k, v in value])
    except (ValueError, TypeError):
        pass
    return Opaque(str(value) if kind == "object" else "malformed")


def _set(items: list) -> Any:
    try:
        return set(items)
    except TypeError:
        return Opaque("set")


def _frozenset(items: list) -> Any:
    try:
        return frozenset(items)
    except TypeError:
        return Opaque("frozenset")


def _dict(pairs: list) -> Any:
    try:
        return dict(pairs)
    except TypeError:
        return Opaque("dict")


def same(actual: Any, expected: Any, tolerance: float = FLOAT_TOLERANCE, json_expected: bool = False) -> bool:
    """True when `actual` (decoded output) equals `expected` by value with strict types (module doc)."""
    if isinstance(actual, Opaque) or isinstance(expected, Opaque):
        return False
    if type(expected) is float:
        return type(actual) in (int, float) and math.isclose(actual, expected, rel_tol=tolerance, abs_tol=tolerance)
    if type(expected) is list and json_expected and type(actual) is tuple:
        actual = list(actual)
    if type(actual) is not type(expected):
        return False
    if type(expected) in (list, tuple):
        return len(actual) == len(expected) and all(
            same(a, e, tolerance, json_expected) for a, e in zip(actual, expected))
    if type(expected) is dict:
        return actual.keys() == expected.keys() and all(
            same(actual[k], expected[k], tolerance, json_expected) for k in expected)
    return actual == expected  # None, bool, int, str, set, frozenset: built-in equality of plain values


def same_text(actual: str, expected: str, tolerance: float | None = None) -> bool:
    """Program output against expected stdout: lines compared with trailing whitespace and trailing
    blank lines ignored; with `tolerance`, tokens that both parse as floats compare within it."""
    got, want = actual.rstrip().splitlines(), expected.rstrip().splitlines()
    if len(got) != len(want):
        return False
    for line, reference in zip(got, want):
        line, reference = line.rstrip(), reference.rstrip()
        if line == reference:
            continue
        if tolerance is None:
            return False
        tokens, wanted = line.split(), reference.split()
        if len(tokens) != len(wanted) or not all(_token_close(a, b, tolerance) for a, b in zip(tokens, wanted)):
            return False
    return True


def _token_close(a: str, b: str, tolerance: float) -> bool:
    if a == b:
        return True
    try:
        return math.isclose(float(a), float(b), rel_tol=tolerance, abs_tol=tolerance)
    except ValueError:
        return False
