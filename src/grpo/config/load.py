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
from grpo.textcheck import decode_utf8

DEFAULT_CONFIG = "arith.yaml"
MAX_CONFIG_BYTES = 1 << 20
MAX_EXPANDED = 1_000_000  # characters once aliases are written out; the default config holds about 2,000
SectionT = TypeVar("SectionT", bound=BaseModel)


class ConfigError(UserError):
    """A user-facing configuration problem; the message is one line and says what to change."""


def default_config_text() -> str:
    """The embedded default run configuration, shipped as package data."""
    return resources.files("grpo.config.defaults").joinpath(DEFAULT_CONFIG).read_text()


class CheckedLoader(yaml.SafeLoader):
    """`yaml.safe_load`, but the composed document is checked before any value is built: aliases may
    not expand it beyond MAX_EXPANDED characters (an alias bomb costs nothing to parse and explodes only
    when printed or copied), may not refer to themselves, and no mapping may repeat a key."""

    def compose_document(self) -> yaml.Node:
        node = super().compose_document()
        _expanded_size(node, {}, set(), self.name)
        return node


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_nodes: set[int], source: str) -> int:
    """Characters the document under `node` holds once every alias is written out (memoised per node)."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_nodes:
        raise ConfigError(f"{source}:{node.start_mark.line + 1}: a YAML alias refers to the node that contains it")
    open_nodes.add(key)
    if isinstance(node, yaml.ScalarNode):
        size = 1 + len(node.value)
    elif isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(child, sizes, open_nodes, source) for child in node.value)
    else:
        _no_repeated_keys(node, source)
        size = 1 + sum(_expanded_size(part, sizes, open_nodes, source) for pair in node.value for part in pair)
    open_nodes.discard(key)
    if size > MAX_EXPANDED:
        raise ConfigError(f"{source}: YAML aliases expand it to more than {MAX_EXPANDED} characters (an alias "
                          "bomb); write the values out instead of repeating aliases")
    sizes[key] = size
    return size


def _no_repeated_keys(node: yaml.MappingNode, source: str) -> None:
    seen: set[str] = set()
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
            continue
        if key_node.value in seen:
            raise ConfigError(f"{source}:{key_node.start_mark.line + 1}: key '{key_node.value}' appears twice "
                              "in the same section (the later one would silently win)")
        seen.add(key_node.value)


def read_yaml(path: Path) -> dict[str, Any]:
    """Parse a YAML mapping from `path`, naming the file and line on failure."""
    if path.is_dir():
        raise ConfigError(f"{path} is a directory, not a config file")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the config file ({error.strerror or error})") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: {len(data)} bytes is too large for a config file (at most {MAX_CONFIG_BYTES})")
    text, problem = decode_utf8(data)
    if text is None and problem.startswith("line "):
        line, _, why = problem.removeprefix("line ").partition(": ")
        raise ConfigError(f"{path}:{line}: {why}; save the file as UTF-8")
    if text is None:
        raise ConfigError(f"{path}: not a UTF-8 YAML text file: {problem}")
    return parse_yaml(text, source=str(path))


def load_yaml(text: str, source: str) -> Any:
    """YAML text through `CheckedLoader`, with `source` naming it in errors."""
    loader = CheckedLoader(text)
    loader.name = source
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def parse_yaml(text: str, source: str) -> dict[str, Any]:
    """Parse YAML text that must hold a mapping (or nothing)."""
    try:
        data = load_yaml(text, source)
    except yaml.reader.ReaderError as error:
        line = text.count("\n", 0, error.position) + 1
        raise ConfigError(f"{source}:{line}: invalid YAML (character #x{error.character:04x} is not allowed in "
                          "YAML text)") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        why = str(getattr(error, "problem", None) or error).splitlines()[0]
        raise ConfigError(f"{where}: invalid YAML ({why})") from None
    except RecursionError:
        raise ConfigError(f"{source}: invalid YAML (nested too deeply)") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        kinds = {list: "a list", str: "a string", int: "a number", float: "a number", bool: "a boolean"}
        kind = kinds.get(type(data), f"a {type(data).__name__}")
        raise ConfigError(f"{source}: the top level must be a mapping of sections (model:, task:, ...), got {kind}")
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
        node[parts[-1]] = load_yaml(raw, f"override {key.strip()}") if raw.strip() else ""
    except (yaml.YAMLError, RecursionError):
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


def default_data(overrides: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """The embedded default run, less the keys that the algorithm the overrides choose does not read:
    it turns on GRPO-only keys (dynamic sampling), and `grpo train algorithm=ppo` runs PPO on its task."""
    from grpo.config.applicability import unused_key  # applicability reads YAML through this module

    data = parse_yaml(default_config_text(), DEFAULT_CONFIG)
    chosen: dict[str, Any] = {"algorithm": data.get("algorithm", "grpo")}
    for override in overrides:
        if override.partition("=")[0].strip() == "algorithm":
            apply_override(chosen, override)
    for section, values in data.items():
        if isinstance(values, dict):
            for key in [key for key in values if unused_key(chosen["algorithm"], f"{section}.{key}")]:
                del values[key]
    return data


def load_config(path: Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """The run configuration from `path` (the embedded default when None) with overrides applied."""
    data = read_yaml(path) if path is not None else default_data(overrides)
    for override in overrides:
        apply_override(data, override)
    return validate(data)


def dump_config(config: RunConfig) -> str:
    """The resolved configuration as YAML, every field written out."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
