"""Plain data across the sandbox boundary.

The child encodes a candidate's outputs into tagged JSON; the parent decodes them into
builtin values only. Only exact builtin types cross: None, bool, int, float (NaN and
infinities included), complex, str, bytes, list, tuple, dict, set, frozenset. Exactly
`collections.Counter`, `defaultdict` and `OrderedDict` cross as plain dicts (they compare
equal to dicts in Python, and only their data crosses). Any other subclass or object is
refused by name, so an object that claims to equal everything never reaches the judge. The decoder trusts nothing: whatever bytes a hostile child writes, the
parent gets plain values or a CodecError.

Wire form: JSON scalars stand for themselves (JSON keeps int and float apart); lists are
arrays; everything else is a one-key object: {"t": [...]} tuple, {"s": [...]} set,
{"f": [...]} frozenset, {"d": [[k, v], ...]} dict, {"b": "base64"} bytes, {"c": [real, imag]} complex.
"""

from __future__ import annotations

import base64
import collections
import json
import math
from typing import Any

DICT_LIKE = (collections.Counter, collections.defaultdict, collections.OrderedDict)

MAX_DEPTH = 100


class CodecError(ValueError):
    pass


class Refused(CodecError):
    """A value that is not plain data (a custom object, a subclass, a function)."""


def encode(value: Any, depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        raise Refused("nesting deeper than 100")
    kind = type(value)
    if value is None or kind is bool or kind is str:
        return value
    if kind is int:
        return value
    if kind is float:
        return value
    if kind is list:
        return [encode(v, depth + 1) for v in value]
    if kind is tuple:
        return {"t": [encode(v, depth + 1) for v in value]}
    if kind is set:
        return {"s": [encode(v, depth + 1) for v in value]}
    if kind is frozenset:
        return {"f": [encode(v, depth + 1) for v in value]}
    if kind is dict or kind in DICT_LIKE:
        return {"d": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in dict.items(value)]}
    if kind is complex:
        return {"c": [value.real, value.imag]}
    if kind is bytes:
        return {"b": base64.b64encode(value).decode("ascii")}
    raise Refused(f"{kind.__module__}.{kind.__qualname__}" if kind.__module__ != "builtins" else kind.__qualname__)


def dumps(value: Any) -> str:
    return json.dumps(encode(value), separators=(",", ":"))


def decode(wire: Any, depth: int = 0) -> Any:
    """Rebuild builtin values from the wire form; raise CodecError on anything else."""
    if depth > MAX_DEPTH:
        raise CodecError("nesting deeper than 100")
    kind = type(wire)
    if wire is None or kind in (bool, int, float, str):
        return wire
    if kind is list:
        return [decode(v, depth + 1) for v in wire]
    if kind is dict and len(wire) == 1:
        (tag, body), = wire.items()
        if tag == "b" and type(body) is str:
            try:
                return base64.b64decode(body.encode("ascii"), validate=True)
            except (ValueError, UnicodeEncodeError) as exc:
                raise CodecError(f"bad bytes: {exc}") from None
        if type(body) is not list:
            raise CodecError(f"tag {tag!r} needs a list")
        if tag == "c":
            if len(body) != 2 or any(type(x) not in (int, float) for x in body):
                raise CodecError("complex needs [real, imag]")
            try:
                return complex(body[0], body[1])
            except (OverflowError, ValueError) as exc:
                raise CodecError(f"bad complex: {exc}") from None
        if tag == "t":
            return tuple(decode(v, depth + 1) for v in body)
        try:
            if tag == "s":
                return {decode(v, depth + 1) for v in body}
            if tag == "f":
                return frozenset(decode(v, depth + 1) for v in body)
            if tag == "d":
                out = {}
                for item in body:
                    if type(item) is not list or len(item) != 2:
                        raise CodecError("dict items must be [key, value]")
                    out[decode(item[0], depth + 1)] = decode(item[1], depth + 1)
                return out
        except TypeError as exc:  # unhashable key or member
            raise CodecError(str(exc)) from None
    raise CodecError(f"not plain data: {str(wire)[:60]}")


def loads(text: str | bytes) -> Any:
    try:
        return decode(json.loads(text))
    except (ValueError, RecursionError) as exc:
        raise CodecError(f"undecodable: {exc}") from None


def strict_key(value: Any) -> Any:
    """A hashable form that is equal for two values exactly when they are the same data
    with the same types all the way down (1, 1.0 and True differ; so do 0.0 and -0.0)."""
    kind = type(value)
    if kind is float or kind is complex:
        return (kind.__name__, repr(value))
    if kind in (list, tuple):
        return (kind.__name__, tuple(strict_key(v) for v in value))
    if kind in (set, frozenset):
        return (kind.__name__, frozenset(strict_key(v) for v in value))
    if kind is dict:
        return ("dict", frozenset((strict_key(k), strict_key(v)) for k, v in value.items()))
    return (kind.__name__, value)


def exact_key(value: Any) -> Any:
    """Like strict_key, but order counts where Python lets it show: dict items and set
    members in iteration order."""
    kind = type(value)
    if kind is float or kind is complex:
        return (kind.__name__, repr(value))
    if kind in (list, tuple, set, frozenset):
        return (kind.__name__, tuple(exact_key(v) for v in value))
    if kind is dict:
        return ("dict", tuple((exact_key(k), exact_key(v)) for k, v in value.items()))
    return (kind.__name__, value)


def same_value(expected: Any, actual: Any, rel_tol: float = 1e-9, abs_tol: float = 1e-9) -> bool:
    """Type-strict equality: types must match exactly (True is not 1, 1 is not 1.0,
    a tuple is not a list); floats within tolerance; NaN equals NaN."""
    te, ta = type(expected), type(actual)
    if te is not ta:
        return False
    if te is float:
        if math.isnan(expected) or math.isnan(actual):
            return math.isnan(expected) and math.isnan(actual)
        if math.isinf(expected) or math.isinf(actual):
            return expected == actual
        return math.isclose(expected, actual, rel_tol=rel_tol, abs_tol=abs_tol)
    if te is complex:
        return (same_value(expected.real, actual.real, rel_tol, abs_tol)
                and same_value(expected.imag, actual.imag, rel_tol, abs_tol))
    if te in (list, tuple):
        return len(expected) == len(actual) and all(
            same_value(e, a, rel_tol, abs_tol) for e, a in zip(expected, actual)
        )
    if te is dict:
        if {strict_key(k) for k in expected} != {strict_key(k) for k in actual}:
            return False
        return all(same_value(v, actual[k], rel_tol, abs_tol) for k, v in expected.items())
    if te in (set, frozenset):
        return strict_key(expected) == strict_key(actual)
    return expected == actual
