"""docs/algorithms.md stays true: its worked example runs, and it documents every algorithm key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from grpo.config.schema import AlgoConfig, DPOConfig, PPOConfig

DOC = Path(__file__).resolve().parents[2] / "docs" / "algorithms.md"


def test_worked_numbers_run():
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert blocks, "docs/algorithms.md lost its worked example"
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), {})


@pytest.mark.parametrize("section", [AlgoConfig, PPOConfig, DPOConfig])
def test_every_key_is_documented(section):
    text = DOC.read_text()
    missing = [name for name in section.model_fields if f"`{name}`" not in text]
    assert not missing, f"keys missing from docs/algorithms.md: {missing}"
