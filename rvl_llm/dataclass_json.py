"""Frozen dataclasses (the recipe, the manifest) to JSON and back, every field checked against
its type hint: a missing field, an unknown field or a value of the wrong type is an error naming
the field, never a silent default.
"""

from __future__ import annotations

import types
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints


class SchemaError(ValueError):
    """A JSON value that does not fit the dataclass; the message names the field."""


def to_json(value: Any) -> Any:
    """Dataclasses as objects, paths as strings, tuples as lists; everything else as it is."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple | list):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    return value


def from_json(cls: type, data: Any, where: str = "") -> Any:
    """``cls(**fields)`` from ``data``, which must hold every field of ``cls`` and no other."""
    if not isinstance(data, dict):
        raise SchemaError(f"{where or cls.__name__}: expected an object, got {_kind(data)}")
    hints = get_type_hints(cls)
    names = [f.name for f in fields(cls) if f.init]
    missing = [n for n in names if n not in data]
    if missing:
        raise SchemaError(f"missing field {_join(where, missing[0])}")
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise SchemaError(f"unknown field {_join(where, unknown[0])}")
    values = {n: convert(hints[n], data[n], _join(where, n)) for n in names}
    return cls(**values)


def convert(hint: Any, value: Any, where: str) -> Any:
    """``value`` as the type ``hint`` names (str, int, float, bool, Path, None, unions, tuples,
    dicts and nested dataclasses), or SchemaError."""
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:  # X | None: X's own error says more
            return convert(options[0], value, where)
        for option in options:
            try:
                return convert(option, value, where)
            except SchemaError:
                continue
        raise SchemaError(f"{where}: {_kind(value)} is not {_hint_name(hint)}")
    if is_dataclass(hint):
        return from_json(hint, value, where)
    if origin is tuple:
        items = _expect(value, list, where, "a list")
        variadic = len(args) == 2 and args[1] is Ellipsis
        hints = [args[0]] * len(items) if variadic else args
        if len(items) != len(hints):  # a fixed-length tuple
            raise SchemaError(f"{where}: expected {len(args)} items, got {len(items)}")
        return tuple(convert(h, v, f"{where}[{i}]")
                     for i, (h, v) in enumerate(zip(hints, items, strict=True)))
    if origin is dict:
        mapping = _expect(value, dict, where, "an object")
        return {k: convert(args[1], v, f"{where}.{k}") for k, v in mapping.items()}
    if hint is Path:
        return Path(_expect(value, str, where, "a path string"))
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, bool):
        raise SchemaError(f"{where}: expected a whole number, got a boolean")
    if hint in (str, int, bool):
        return _expect(value, hint, where, _hint_name(hint))
    raise SchemaError(f"{where}: cannot read a field of type {_hint_name(hint)}")


def _expect(value: Any, kind: type, where: str, name: str) -> Any:
    if not isinstance(value, kind):
        raise SchemaError(f"{where}: expected {name}, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    return "null" if value is None else f"{type(value).__name__} {value!r}"[:60]


def _hint_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name
