"""The one validation path of params.yaml: a mapping becomes a typed, frozen dataclass, or ConfigError.

:func:`build` checks a section against its dataclass: unknown and missing keys, then each value against the
field's type hint (lists become tuples, mappings read-only views, nested dataclasses are built the same way),
then the class's own invariants (``__post_init__`` of the library's configs, such as ``TrainConfig`` and
``ProcessorConfig``, which hold wherever those objects are built, e.g. from a checkpoint), then the section's
``check(key)`` for its ranges and names (:func:`require`). Every problem is a :class:`ConfigError` naming the
dotted key (``pretrain.runs.tiny.train.steps``), the value found (cut to SHOWN_CHARS) and what is allowed.

This module imports nothing of nar's but its errors, so every section (nar/config.py, nar/natural/config.py,
nar/transfer/config.py, nar/training/loop.py) can use it and ``nar.config`` can gather them without a circle.
"""

from __future__ import annotations

import dataclasses
import math
import reprlib
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal

from nar.errors import NarError

SHOWN_CHARS = 200  # at most this much of a bad value goes into an error message

_REPR = reprlib.Repr()  # bounded by depth and length: never builds the whole repr of a huge value
_REPR.maxlevel, _REPR.maxdict, _REPR.maxlist, _REPR.maxtuple = 3, 8, 10, 10
_REPR.maxstring, _REPR.maxlong, _REPR.maxother = SHOWN_CHARS, 60, SHOWN_CHARS


def shown(value: Any) -> str:
    """``repr(value)`` for an error message, cut to at most SHOWN_CHARS characters."""
    if isinstance(value, Mapping) and not isinstance(value, dict):
        value = dict(value)  # read-only views: reprlib would fall back to the full repr
    text = _REPR.repr(value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."


class ConfigError(NarError, ValueError):
    """A value in params.yaml (or a CLI override) is not allowed."""

    def __init__(self, key: str, value: Any, allowed: str) -> None:
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key}: got {shown(value)}; allowed: {allowed}")


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return f"a list of {_type_name(args[0])}" if args else "a list"
    if origin in (dict, Mapping):
        return f"a mapping of name to {_type_name(typing.get_args(tp)[1])}"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if dataclasses.is_dataclass(tp):
        return f"a mapping with keys {[f.name for f in dataclasses.fields(tp)]}"
    if tp is type(None):
        return "null"
    return {int: "an integer", float: "a number", bool: "true/false", str: "a string"}.get(tp, str(tp))


def _coerce(tp: Any, value: Any, key: str) -> Any:
    """Check ``value`` against type hint ``tp`` and convert lists to tuples, dicts to dataclasses."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(key, value, _type_name(tp))
        return value
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _coerce(arg, value, key)
            except ConfigError:
                continue
        raise ConfigError(key, value, _type_name(tp))
    if tp is type(None):
        if value is not None:
            raise ConfigError(key, value, "null")
        return None
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(key, value, _type_name(tp))
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(key, value, f"a list of exactly {len(args)} values")
            return tuple(_coerce(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
        if not value:
            raise ConfigError(key, value, "a non-empty list")
        return tuple(_coerce(args[0], v, f"{key}[{i}]") for i, v in enumerate(value))
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping) or not value:
            raise ConfigError(key, value, "a non-empty " + _type_name(tp))
        _, val_tp = typing.get_args(tp)
        # read-only view: Params are frozen all the way down
        return types.MappingProxyType({str(k): _coerce(val_tp, v, f"{key}.{k}") for k, v in value.items()})
    if dataclasses.is_dataclass(tp):
        return build(tp, value, key)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, value, "true/false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, value, "an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(key, value, "a number")
        if not math.isfinite(value):  # YAML's .nan / .inf: no comparison or threshold means anything with them
            raise ConfigError(key, value, "a finite number")
        return float(value)
    if tp is str:
        if not isinstance(value, str) or not value:
            raise ConfigError(key, value, "a non-empty string")
        return value
    raise TypeError(f"unsupported config type {tp!r} at {key}")


def join_key(key: str, name: str) -> str:
    """``key.name``, or ``name`` at the top level."""
    return f"{key}.{name}" if key else name


def build(cls: type, data: Any, key: str) -> Any:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys; then run ``cls.check``."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(key, data, _type_name(cls))
    # classes may name types from torch-importing modules; they resolve them on demand
    lazy = getattr(cls, "lazy_types", None)
    hints = typing.get_type_hints(cls, localns=lazy() if lazy else None)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(join_key(key, unknown[0]), data[unknown[0]], f"one of the keys {sorted(names)}")
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.name not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(join_key(key, missing[0]), "missing", f"{_type_name(hints[missing[0]])} (required)")
    kwargs = {name: _coerce(hints[name], data[name], join_key(key, name)) for name in names if name in data}
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as exc:  # the class's own validation (__post_init__)
        raise ConfigError(key or "params", dict(data), str(exc)) from None
    check = getattr(obj, "check", None)
    if check is not None:
        check(key)
    return obj


def require(cond: bool, key: str, value: Any, allowed: str) -> None:
    """The range and name rules of every section's ``check(key)``: ConfigError unless ``cond``."""
    if not cond:
        raise ConfigError(key, value, allowed)
