"""The one reader of the project's YAML files (field, scenario and training configs) and the
one wording of their errors.

A file is read with a loader that refuses what PyYAML lets through silently: a key given
twice in one mapping (the second would win), and nesting deeper than :data:`MAX_DEPTH`
(PyYAML's composer recurses, so a deep file raised ``RecursionError``). It is then checked
against a pydantic model or a dataclass, with booleans refused where a number is expected
(``rate_bps: yes`` is YAML's ``True``, which pydantic would take as 1). Every error is one
line: ``FILE: KEY: expected WHAT, got VALUE``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar, Union

import yaml
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError, model_validator

__all__ = [
    "MAX_DEPTH", "ConfigError", "StrictModel", "format_error", "load", "parse_yaml", "read_yaml",
    "validate",
]  # fmt: skip

MAX_DEPTH = 64  # nesting levels; the deepest shipped file has 5
T = TypeVar("T")


class ConfigError(ValueError):
    """A config file that cannot be used; the message is one line naming the file and key."""


class _Loader(yaml.SafeLoader):
    """SafeLoader with a nesting limit and duplicate keys refused."""

    def __init__(self, stream) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise yaml.composer.ComposerError(
                    None, None, f"nested deeper than {MAX_DEPTH} levels", mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            first: dict[Any, Any] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # `<<: *base` keys may be overridden by design
                key = self.construct_object(key_node, deep=True)
                try:
                    seen = first.setdefault(key, key_node.start_mark)
                except TypeError:
                    continue  # an unhashable key: the base class says so
                if seen is not key_node.start_mark:
                    raise yaml.constructor.ConstructorError(
                        None, None,
                        f"duplicate key {key!r} (first at line {seen.line + 1}); keep one",
                        key_node.start_mark,
                    )  # fmt: skip
        return super().construct_mapping(node, deep)


def read_yaml(path: str | Path, what: str, error: type[ConfigError] = ConfigError) -> dict:
    """The mapping at the top of a YAML file.

    Args:
        path: the file.
        what: what its top-level keys are, for the error (``"scenario fields"``).
        error: the ConfigError subclass to raise.
    Raises:
        ConfigError: unreadable, not UTF-8, not YAML, a duplicate key, too deep, not a mapping.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise error(
            f"{path}: not UTF-8 text (byte {exc.start}: {exc.object[exc.start:exc.end]!r}); "
            "save it as UTF-8"
        ) from None
    return parse_yaml(text, str(path), what, error)


def parse_yaml(text: str, source: str, what: str, error: type[ConfigError] = ConfigError) -> Any:
    """:func:`read_yaml` of text already read (``what=""``: any document, not only a mapping)."""
    try:
        doc = yaml.load(text, Loader=_Loader)  # a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark, problem = exc.problem_mark, exc.problem or str(exc).splitlines()[0]
        where = f"line {mark.line + 1} column {mark.column + 1}" if mark else ""
        if problem.startswith(("duplicate key", "nested deeper")):
            raise error(f"{source}: {where}: {problem}") from None
        raise error(f"{source}: not valid YAML at {where}: {problem}") from None
    except yaml.YAMLError as exc:
        raise error(f"{source}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if what and not isinstance(doc, dict):
        raise error(f"{source}: expected a mapping of {what} at the top level, got {_shown(doc)}")
    return doc


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def format_error(source: str, err: dict[str, Any]) -> str:
    """One pydantic error as one line: ``SOURCE: KEY: expected WHAT, got VALUE``."""
    key = ".".join(str(p) if str(p).isprintable() else repr(p) for p in err["loc"])
    at = f"{source}: {key}" if key else source
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        return f"{at}: unknown key; remove it or check its spelling"
    if kind == "missing":
        return f"{at}: missing; add it"
    if kind in ("value_error", "assertion_error"):  # the project's validators: a whole sentence
        return f"{at}: {msg.removeprefix('Value error, ').removeprefix('Assertion failed, ')}"
    msg = msg.removeprefix("Input should be ").removeprefix("input should be ")
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        msg = "a number " + (
            msg.replace("greater than or equal to", ">=").replace("less than or equal to", "<=")
            .replace("greater than", ">").replace("less than", "<")
        )  # fmt: skip
    return f"{at}: expected {msg}, got {_shown(err.get('input'))}"


def _bool_for_number(tp: Any, value: Any, loc: tuple) -> tuple | None:
    """Where in ``value`` a boolean stands for a number that ``tp`` expects (None: nowhere)."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _bool_for_number(typing.get_args(tp)[0], value, loc)
    if origin in (Union, types.UnionType):
        members = [_unannotated(m) for m in typing.get_args(tp)]
        if isinstance(value, bool):
            return None if bool in members else next(
                (loc for m in members if m in (int, float)), None
            )
        return next((w for m in members if (w := _bool_for_number(m, value, loc))), None)
    if isinstance(value, bool):
        return loc if tp in (int, float) else None
    if isinstance(value, dict):
        fields = _field_types(tp)
        return next(
            (w for k, v in value.items() if k in fields
             and (w := _bool_for_number(fields[k], v, (*loc, k)))), None
        )  # fmt: skip
    if isinstance(value, list) and origin in (list, tuple):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return next(
            (w for i, v in enumerate(value)
             if (w := _bool_for_number(args[min(i, len(args) - 1)] if args else Any, v,
                                       (*loc, i)))), None
        )  # fmt: skip
    return None


def _unannotated(tp: Any) -> Any:
    return typing.get_args(tp)[0] if typing.get_origin(tp) is typing.Annotated else tp


def _field_types(tp: Any) -> dict[str, Any]:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return {name: f.annotation for name, f in tp.model_fields.items()}
    if dataclasses.is_dataclass(tp):
        return typing.get_type_hints(tp)
    return {}


class StrictModel(BaseModel):
    """Base of every config section: unknown keys refused, frozen, no inf/nan, and no
    booleans where a number is expected (checked over the whole document at its top)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_bool_for_number(cls, data: Any) -> Any:
        _refuse_bool_for_number(cls, data)
        return data


def _refuse_bool_for_number(schema: Any, doc: Any) -> None:
    """Raises ValueError naming the first boolean where ``schema`` expects a number."""
    where = _bool_for_number(schema, doc, ()) if isinstance(doc, dict) else None
    if where is not None:
        value = doc
        for k in where:
            value = value[k]
        raise ValueError(
            f"{'.'.join(map(str, where))}: expected a number, got {value} (YAML reads "
            "yes/no/on/off/true/false as a boolean)"
        )


def validate(schema: type[T], doc: Any, source: str, error: type[ConfigError] = ConfigError) -> T:
    """``doc`` checked against ``schema`` (a :class:`StrictModel` or a dataclass, whose
    unknown keys are refused too).

    Raises: ConfigError, one line (:func:`format_error`)."""
    try:
        if issubclass(schema, BaseModel):
            return schema.model_validate(doc)
        if isinstance(doc, dict):
            known = {f.name for f in dataclasses.fields(schema)}  # type: ignore[arg-type]
            unknown = sorted(str(k) for k in doc if k not in known)
            if unknown:
                raise error(f"{source}: {unknown[0]}: unknown key; remove it or check its spelling")
            _refuse_bool_for_number(schema, doc)
        return TypeAdapter(schema).validate_python(doc)
    except ValidationError as exc:
        raise error(format_error(source, exc.errors()[0])) from None
    except ConfigError:
        raise
    except ValueError as exc:  # a dataclass's own check (__post_init__) or a boolean
        raise error(f"{source}: {exc}") from None


def load(path: str | Path, schema: type[T], what: str) -> T:
    """:func:`read_yaml` then :func:`validate`: a config file whose keys are ``schema``'s.

    Raises: ConfigError, one line naming the file and the key."""
    return validate(schema, read_yaml(path, what), str(path))
