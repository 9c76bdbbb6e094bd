"""One schema per setting: the YAML reader and error wording of every config file, the link
model and the rate/budget model that the field file, the scenario file and the CLIs share
(docs/architecture.md)."""

from textboost.settings.load import ConfigError, StrictModel, format_error, read_yaml, validate

__all__ = ["ConfigError", "StrictModel", "format_error", "read_yaml", "validate"]
