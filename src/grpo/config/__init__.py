"""Run configuration: the pydantic schema and the YAML loader."""

from grpo.config.load import ConfigError, dump_config, load_config
from grpo.config.schema import RunConfig

__all__ = ["ConfigError", "RunConfig", "dump_config", "load_config"]
