"""The kinds of field the PromDemo spec declares, and the CRD schema of each.

Each field of the typed spec (`core/spec.py`) carries one declaration (its JSON
name, default, bounds, description, CEL rules) in its dataclass field's
metadata. From those declarations alone, `core/spec.py` derives the defaults and
bounds that `parse_spec` checks, and `core/crd.py` writes the CRD's openAPIV3Schema:
a default, bound or rule is written once, beside the field it belongs to.

A description may say `{bounds}`: the CRD gets the field's floor and ceiling
there (`0-50`, `1s to 1h`), so the text never repeats a number.

Plain Python: no kopf, no kubernetes client.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar, Protocol, get_type_hints

from promdemo_operator.core.duration import DURATION_PATTERN, MAX_LENGTH, format_seconds

__all__ = [
    "Boolean",
    "Bounds",
    "Check",
    "Choice",
    "Declaration",
    "Duration",
    "Integer",
    "LabelMap",
    "Nested",
    "Number",
    "Rule",
    "Seconds",
    "Text",
    "declarations",
    "declared",
    "defaults_of",
    "known_names",
    "nested_class",
    "object_schema",
    "walk",
]

#: The key of a dataclass field's metadata that holds its declaration.
METADATA_KEY = "promdemo.spec"


@dataclass(frozen=True)
class Bounds:
    """The smallest and largest value a field accepts (seconds, for a duration)."""

    low: float
    high: float


@dataclass(frozen=True)
class Rule:
    """One `x-kubernetes-validations` entry: a CEL rule and its one-line message."""

    rule: str
    message: str

    def schema(self) -> dict[str, str]:
        return {"rule": self.rule, "message": self.message}


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def _plain(value: float) -> float:
    """`1.0` as `1` in the CRD (YAML readers see the number as written)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


@dataclass(frozen=True, kw_only=True)
class Declaration:
    """What every field declares: its JSON name and its description."""

    name: str
    description: str

    def schema(self) -> dict[str, Any]:
        raise NotImplementedError

    def text(self) -> str:
        return self.description


@dataclass(frozen=True, kw_only=True)
class Boolean(Declaration):
    default: bool

    def schema(self) -> dict[str, Any]:
        return {"type": "boolean", "default": self.default, "description": self.text()}


@dataclass(frozen=True, kw_only=True)
class _Bounded(Declaration):
    bounds: Bounds

    def bounds_text(self) -> str:
        return f"{_number_text(self.bounds.low)}-{_number_text(self.bounds.high)}"

    def text(self) -> str:
        return self.description.replace("{bounds}", self.bounds_text())


@dataclass(frozen=True, kw_only=True)
class Integer(_Bounded):
    default: int
    format: str | None = None  # int32 where Kubernetes wants it (the scale subresource)

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "integer"}
        if self.format:
            out["format"] = self.format
        return {
            **out,
            "minimum": _plain(self.bounds.low),
            "maximum": _plain(self.bounds.high),
            "default": self.default,
            "description": self.text(),
        }


@dataclass(frozen=True, kw_only=True)
class Number(_Bounded):
    default: float

    def schema(self) -> dict[str, Any]:
        return {
            "type": "number",
            "minimum": _plain(self.bounds.low),
            "maximum": _plain(self.bounds.high),
            "default": self.default,
            "description": self.text(),
        }


@dataclass(frozen=True, kw_only=True)
class Duration(_Bounded):
    """A duration string (`30s`, `1m30s`); its bounds, in seconds, become a CEL rule."""

    default: str

    def bounds_text(self) -> str:
        return f"{format_seconds(self.bounds.low)} to {format_seconds(self.bounds.high)}"

    def rule(self) -> Rule:
        # CEL's duration() reads what the pattern lets through; a floor of 0s needs no test.
        low, high = format_seconds(self.bounds.low), format_seconds(self.bounds.high)
        ceiling = f"duration(self) <= duration('{high}')"
        floor = f"duration(self) >= duration('{low}') && " if self.bounds.low > 0 else ""
        return Rule(floor + ceiling, f"must be between {low} and {high}")

    def schema(self) -> dict[str, Any]:
        return {
            "type": "string",
            "pattern": DURATION_PATTERN,
            "maxLength": MAX_LENGTH,
            "x-kubernetes-validations": [self.rule().schema()],
            "default": self.default,
            "description": self.text(),
        }


@dataclass(frozen=True, kw_only=True)
class Choice(Declaration):
    """A string out of a fixed list (the CRD's `enum`)."""

    choices: tuple[str, ...]
    default: str

    def schema(self) -> dict[str, Any]:
        return {
            "type": "string",
            "enum": list(self.choices),
            "default": self.default,
            "description": self.text(),
        }


@dataclass(frozen=True, kw_only=True)
class Text(Declaration):
    """A string of `min_length` to `max_length` characters matching `pattern` (anchored);
    `what` and `pattern_text` say it in words, for the operator's message."""

    default: str
    min_length: int
    max_length: int
    pattern: str
    what: str
    pattern_text: str

    def schema(self) -> dict[str, Any]:
        return {
            "type": "string",
            "minLength": self.min_length,
            "maxLength": self.max_length,
            "pattern": self.pattern,
            "default": self.default,
            "description": self.text(),
        }


@dataclass(frozen=True, kw_only=True)
class LabelMap(Declaration):
    """Labels (string to string); the operator also checks the keys, which a schema cannot."""

    max_labels: int
    value_pattern: str
    value_max_length: int = 63

    default: ClassVar[dict[str, str]] = {}

    def schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "default": {},
            "maxProperties": self.max_labels,
            "description": self.text(),
            "additionalProperties": {
                "type": "string",
                "maxLength": self.value_max_length,
                "pattern": self.value_pattern,
            },
        }


class Check(Protocol):
    """A rule between fields of one object (min <= max, a window of two scrapes)."""

    def rules(self) -> tuple[Rule, ...]:
        """Its CEL rules, on the object (empty: only the operator checks it)."""
        ...

    def check(self, data: Mapping[str, Any], path: str) -> None:
        """Raise the spec's error when `data` (the object, its fields read) breaks it."""
        ...


@dataclass(frozen=True, kw_only=True)
class Nested(Declaration):
    """An object: the field's dataclass declares its fields, `checks` the rules between
    them (their CEL rules sit on this object, the nearest one that sees all the fields)."""

    description: str = ""  # an object's description is its class's docstring
    checks: tuple[Check, ...] = ()


@dataclass(frozen=True)
class Seconds:
    """Not a field of the spec: the duration field `of` (an attribute name), in seconds."""

    of: str


def declared(declaration: Declaration | Seconds) -> Any:
    """A dataclass field carrying `declaration` (`x: int = declared(Integer(...))`)."""
    return dataclasses.field(metadata={METADATA_KEY: declaration})


@functools.cache
def _declarations(cls: type) -> tuple[tuple[dataclasses.Field[Any], Declaration | Seconds], ...]:
    # Cached: parse_spec walks them at every reconcile.
    return tuple((item, item.metadata[METADATA_KEY]) for item in dataclasses.fields(cls))


def declarations(cls: type) -> Iterator[tuple[dataclasses.Field[Any], Declaration | Seconds]]:
    """The fields of dataclass `cls` with their declarations, in order."""
    yield from _declarations(cls)


@functools.cache
def nested_class(cls: type, attribute: str) -> type:
    """The dataclass of the object field `attribute` of `cls` (from its type hint)."""
    return get_type_hints(cls)[attribute]


def object_schema(cls: type, declaration: Nested) -> dict[str, Any]:
    """The CRD schema of an object whose fields dataclass `cls` declares."""
    doc = " ".join((cls.__doc__ or "").split())
    out: dict[str, Any] = {"type": "object", "default": {}, "description": doc}
    rules = [rule.schema() for check in declaration.checks for rule in check.rules()]
    if rules:
        out["x-kubernetes-validations"] = rules
    properties: dict[str, Any] = {}
    for item, field_declaration in declarations(cls):
        if isinstance(field_declaration, Seconds):
            continue
        if isinstance(field_declaration, Nested):
            sub = nested_class(cls, item.name)
            properties[field_declaration.name] = object_schema(sub, field_declaration)
        else:
            properties[field_declaration.name] = field_declaration.schema()
    out["properties"] = properties
    return out


def defaults_of(cls: type) -> dict[str, Any]:
    """The default of every field of `cls`, as the API server fills them in."""
    out: dict[str, Any] = {}
    for item, declaration in declarations(cls):
        if isinstance(declaration, Seconds):
            continue
        if isinstance(declaration, Nested):
            out[declaration.name] = defaults_of(nested_class(cls, item.name))
        else:
            out[declaration.name] = copy.deepcopy(declaration.default)  # type: ignore[attr-defined]
    return out


def walk(cls: type, path: str) -> Iterator[tuple[str, Declaration]]:
    """Every declaration under dataclass `cls` with its path (`spec.autoHeal.for`)."""
    for item, declaration in declarations(cls):
        if isinstance(declaration, Seconds):
            continue
        here = f"{path}.{declaration.name}"
        yield here, declaration
        if isinstance(declaration, Nested):
            yield from walk(nested_class(cls, item.name), here)


@functools.cache
def known_names(cls: type) -> Mapping[str, tuple[str, Declaration]]:
    """JSON name -> (attribute, declaration) of the fields of `cls`."""
    return MappingProxyType(
        {
            declaration.name: (item.name, declaration)
            for item, declaration in declarations(cls)
            if not isinstance(declaration, Seconds)
        }
    )
