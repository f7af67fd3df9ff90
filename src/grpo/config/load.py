"""Loading a RunConfig from YAML plus dotted `key=value` overrides, with one-line errors.

Every problem becomes a `ConfigError` whose message names the key, the bad value and what to set
instead; unknown keys get a did-you-mean from the keys that exist at that level.
"""

from __future__ import annotations

import difflib
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from grpo.config.schema import RunConfig
from grpo.errors import UserError

DEFAULT_CONFIG = "arith.yaml"
SectionT = TypeVar("SectionT", bound=BaseModel)


class ConfigError(UserError):
    """A user-facing configuration problem; the message is one line and says what to change."""


def default_config_text() -> str:
    """The embedded default run configuration, shipped as package data."""
    return resources.files("grpo.config.defaults").joinpath(DEFAULT_CONFIG).read_text()


def read_yaml(path: Path) -> dict[str, Any]:
    """Parse a YAML mapping from `path`, naming the file and line on failure."""
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    return parse_yaml(path.read_text(), source=str(path))


def parse_yaml(text: str, source: str) -> dict[str, Any]:
    """Parse YAML text that must hold a mapping (or nothing)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise ConfigError(f"{where}: invalid YAML ({getattr(error, 'problem', error)})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections, got {type(data).__name__}")
    return data


def apply_override(data: dict[str, Any], override: str) -> None:
    """Set `a.b.c=value` in the nested dict; the value is parsed as YAML (numbers, lists, null)."""
    key, sep, raw = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {override!r} is not of the form key=value (e.g. optim.lr=3e-5)")
    parts = key.strip().split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {override!r}: {part!r} is a value, not a section")
        node = child
    try:
        node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        node[parts[-1]] = raw


def _fields_at(loc: tuple[Any, ...], root: type[BaseModel]) -> list[str]:
    """Names of the fields of the section that `loc` (without its last element) points into."""
    model = root
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def _describe(error: dict[str, Any], root: type[BaseModel]) -> str:
    loc = tuple(error["loc"])
    key = ".".join(str(part) for part in loc)
    if error["type"] == "extra_forbidden":
        known = _fields_at(loc, root)
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        prefix = ".".join(str(part) for part in loc[:-1])
        hint = f"; did you mean '{prefix + '.' if prefix else ''}{close[0]}'?" if close else ""
        return f"unknown config key '{key}'{hint} (valid here: {', '.join(known)})"
    message = str(error["msg"]).removeprefix("Value error, ")
    if message.startswith(("algo.", "task.", "guards.", "dpo.")):
        return message
    if message.startswith("unknown "):
        return f"config key '{key}': {message}"
    got = error.get("input")
    return f"config key '{key}': {message} (got {got!r})" if key else message


def validate_section(schema: type[SectionT], data: dict[str, Any]) -> SectionT:
    """Build a frozen config of type `schema`, turning pydantic's report into one line."""
    try:
        return schema.model_validate(data)
    except ValidationError as error:
        problems = error.errors()
        extra = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise ConfigError(_describe(problems[0], schema) + extra) from None


def validate(data: dict[str, Any]) -> RunConfig:
    """Build the frozen RunConfig from a nested mapping."""
    return validate_section(RunConfig, data)


def load_config(path: Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """The run configuration from `path` (the embedded default when None) with overrides applied."""
    data = read_yaml(path) if path is not None else parse_yaml(default_config_text(), DEFAULT_CONFIG)
    for override in overrides:
        apply_override(data, override)
    return validate(data)


def dump_config(config: RunConfig) -> str:
    """The resolved configuration as YAML, every field written out."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
