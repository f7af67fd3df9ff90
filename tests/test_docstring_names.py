"""Docstrings and comments name only modules and config keys that exist (stale words mislead readers)."""

from __future__ import annotations

import ast
import importlib
import io
import re
import tokenize
from pathlib import Path

import pytest

from grpo.config.schema import RunConfig

SRC = Path(__file__).resolve().parents[1] / "src" / "grpo"
MODULE = re.compile(r"\bgrpo(?:\.[A-Za-z_]\w*)+")
SECTIONS = {name for name, field in RunConfig.model_fields.items() if hasattr(field.annotation, "model_fields")}
KEY = re.compile(r"(?<![\w.])(" + "|".join(sorted(SECTIONS)) + r")\.([a-z_]+)\b")


def _prose(path: Path) -> str:
    """The docstrings and comments of one source file."""
    source = path.read_text()
    parts = [ast.get_docstring(node) or "" for node in ast.walk(ast.parse(source))
             if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))]
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    parts += [token.string for token in tokens if token.type == tokenize.COMMENT]
    return "\n".join(parts)


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(target, attribute):
                return False
            target = getattr(target, attribute)
        return True
    return False


def _key_exists(section: str, key: str) -> bool:
    model = RunConfig.model_fields[section].annotation
    return key in model.model_fields or hasattr(model, key)


FILES = sorted(SRC.rglob("*.py"))


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(SRC)) for p in FILES])
def test_named_modules_and_keys_exist(path: Path):
    prose = _prose(path)
    missing = [name for name in MODULE.findall(prose) if not _resolves(name.rstrip("."))]
    missing += [f"{section}.{key}" for section, key in KEY.findall(prose) if not _key_exists(section, key)]
    assert not missing, f"{path.relative_to(SRC)} names what does not exist: {sorted(set(missing))}"
