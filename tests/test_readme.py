"""The README documents every configuration key the schema accepts (one source, no drift)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from grpo.config.schema import RunConfig

README = Path(__file__).resolve().parents[1] / "README.md"


def dotted_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys += dotted_keys(annotation, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


def test_every_config_key_is_in_the_readme_table():
    text = README.read_text()
    missing = [key for key in dotted_keys(RunConfig) if f"| `{key}` |" not in text]
    assert not missing, f"README config table lacks: {missing}"
