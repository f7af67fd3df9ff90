"""Size budgets and import direction from the design guide (P7 and section 1), checked on every run."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "grpo"
MODULE_CEILING, FUNCTION_CEILING = 600, 80


def test_no_module_or_function_over_the_ceiling():
    offenders = []
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        if text.count("\n") > MODULE_CEILING:
            offenders.append(f"{path.relative_to(SRC)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > FUNCTION_CEILING:
                    offenders.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name}: {length} lines")
    assert not offenders, offenders


def test_algo_loads_without_models_or_the_rest_of_grpo():
    code = ("import sys, grpo.algo; bad = [m for m in sys.modules if m.startswith(('transformers', 'grpo.')) "
            "and not m.startswith('grpo.algo')]; print(bad); assert not bad")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_trainer_modules_and_method_steps_stay_small():
    """trainers/ modules under 400 lines; each method's step reads in one screen (at most 50 lines)."""
    offenders = []
    for path in (SRC / "trainers").glob("*.py"):
        text = path.read_text()
        if text.count("\n") > 400:
            offenders.append(f"{path.name}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef) and node.name in ("grpo_step", "ppo_step", "dpo_step"):
                if node.end_lineno - node.lineno + 1 > 50:
                    offenders.append(f"{path.name}: {node.name}")
    assert not offenders, offenders


def test_no_trainer_imports_another_method_s_private_names():
    methods = {"grpo", "ppo", "dpo", "dpo_pairs"}
    for name in methods:
        tree = ast.parse((SRC / "trainers" / f"{name}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("grpo.trainers."):
                other = node.module.rsplit(".", 1)[1]
                if other in methods and other != name and not (name == "dpo" and other == "dpo_pairs"):
                    raise AssertionError(f"trainers/{name}.py imports from trainers/{other}.py")
                assert not any(alias.name.startswith("_") for alias in node.names), (name, node.module)
