import collections
import json
import math

import pytest

from greenloop.sandbox import codec

PLAIN = [None, True, False, 0, -7, 2**100, 1.5, float("inf"), "text", b"\x00\xff", [1, [2]],
         (1, "a"), {1, 2}, frozenset({3}), {"k": (1, 2), 3: [None]}, 1 + 2j, ()]


@pytest.mark.parametrize("value", PLAIN, ids=repr)
def test_round_trip_keeps_exact_types(value):
    back = codec.loads(codec.dumps(value))
    assert back == value and type(back) is type(value)


def test_nan_round_trips_and_compares_equal_to_nan():
    back = codec.loads(codec.dumps(float("nan")))
    assert math.isnan(back)
    assert codec.same_value(float("nan"), back)
    assert not codec.same_value(float("nan"), 1.0)


def test_counter_and_defaultdict_cross_as_plain_dicts():
    back = codec.loads(codec.dumps(collections.Counter("aab")))
    assert back == {"a": 2, "b": 1} and type(back) is dict


class AlwaysEqual:
    def __eq__(self, other):
        return True


class SneakyInt(int):
    def __eq__(self, other):
        return True


class SneakyCounter(collections.Counter):
    pass


@pytest.mark.parametrize("value", [AlwaysEqual(), SneakyInt(3), [1, SneakyInt(2)], SneakyCounter(), print, iter([])],
                         ids=["object", "int-subclass", "nested", "counter-subclass", "function", "iterator"])
def test_refuses_objects_and_subclasses(value):
    with pytest.raises(codec.Refused):
        codec.encode(value)


@pytest.mark.parametrize("wire", ['{"x": 1}', '{"t": 5}', '{"s": [[1]]}', '{"d": [[1]]}', '{"b": "!!"}',
                                  '{"c": ["a", 1]}', '{"t": [], "s": []}', "[" * 5000 + "]" * 5000, "not json"])
def test_decoder_refuses_anything_but_the_wire_form(wire):
    with pytest.raises(codec.CodecError):
        codec.loads(wire)


def test_same_value_is_type_strict_with_float_tolerance():
    assert not codec.same_value(1, True)
    assert not codec.same_value(1, 1.0)
    assert not codec.same_value([1], (1,))
    assert codec.same_value(0.1 + 0.2, 0.3)
    assert codec.same_value([0.1 + 0.2, {"a": 1.0}], [0.3, {"a": 1.0}])
    assert not codec.same_value(1.0, 1.1, rel_tol=1e-3, abs_tol=1e-3)
    assert not codec.same_value({"a": 1}, {"a": 1, "b": 2})


def test_wire_is_plain_json():
    assert json.loads(codec.dumps((1, {2}))) == {"t": [1, {"s": [2]}]}


def test_strict_key_tells_types_apart_all_the_way_down():
    k = codec.strict_key
    assert k([1, (2.0, {3})]) == k([1, (2.0, {3})])
    assert k(1) != k(1.0) and k(1) != k(True) and k(0.0) != k(-0.0)
    assert k({1}) != k({1.0}) and k({"a": [1]}) != k({"a": [1.0]})
    assert k(float("nan")) == k(float("nan"))
    assert not codec.same_value({1, 2}, {1.0, 2})
