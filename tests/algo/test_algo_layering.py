"""Layering and purity rules for grpo.algo (design guide sections 1, P1, P5 and 5)."""

import ast
import re
import sys
from pathlib import Path

import pytest

ALGO_DIR = Path(__file__).resolve().parents[2] / "src" / "grpo" / "algo"
MODULES = sorted(ALGO_DIR.glob("*.py"))


def _imported_modules(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            names.append(node.module)
    return names


def test_modules_found():
    assert len(MODULES) >= 10


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_imports_only_torch_stdlib_and_grpo_algo(path):
    for name in _imported_modules(path):
        top = name.split(".")[0]
        allowed = top == "torch" or top in sys.stdlib_module_names or name.startswith("grpo.algo")
        assert allowed, f"{path.name} imports {name}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_no_sync_print_or_logging(path):
    source = path.read_text()
    for pattern in (r"\.item\(\)", r"\bprint\(", r"\.tolist\(\)", r"\bimport logging\b"):
        assert not re.search(pattern, source), f"{path.name} matches {pattern}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_size_budget(path):
    # Design guide P7: modules under 400 lines, functions under 50.
    source = path.read_text()
    assert len(source.splitlines()) < 400
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef):
            assert node.end_lineno - node.lineno < 50, f"{path.name}:{node.name}"
