"""JSON in, typed values out."""

from __future__ import annotations

import enum
import inspect
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import flowledger as fl
from flowledger.serialization import (
    bind_arguments,
    call_arguments,
    check_size,
    decode_inputs,
)

ser = fl.JsonSerializer()
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_plain_json_round_trips(value: Any) -> None:
    assert ser.loads(ser.dumps(value)) == value


class Colour(enum.Enum):
    RED = "red"


@dataclass
class Order:
    id: uuid.UUID
    placed: datetime
    lines: list[tuple[str, Decimal]]
    colour: Colour
    due: date
    wait: timedelta
    blob: bytes


@given(st.binary(max_size=64), st.datetimes(timezones=st.just(UTC)),
       st.decimals(allow_nan=False, allow_infinity=False, places=2))
def test_annotated_types_are_restored(blob: bytes, when: datetime, amount: Decimal) -> None:
    order = Order(uuid.uuid4(), when, [("tea", amount)], Colour.RED, date(2026, 1, 2),
                  timedelta(seconds=90), blob)
    assert ser.loads(ser.dumps(order), Order) == order


def test_non_finite_floats_survive() -> None:
    restored = ser.loads(ser.dumps([float("inf"), float("-inf")]))
    assert restored == [float("inf"), float("-inf")]


def test_error_names_the_offending_value() -> None:
    class Client:
        pass

    with pytest.raises(fl.SerializationError) as info:
        ser.dumps({"ok": 1, "nested": {"client": [Client()]}})
    message = str(info.value)
    assert "value['nested']['client'][0]" in message and "Client" in message


def test_mismatching_annotation_falls_back_to_plain_json() -> None:
    assert ser.loads(ser.dumps({"a": 1}), int) == {"a": 1}


def test_size_guard() -> None:
    assert check_size("abc", 3, "x") == "abc"
    with pytest.raises(fl.PayloadTooLarge, match="output of step 's'"):
        check_size("abcd", 3, "output of step 's'")


def _sig_fn(a: int, /, b: date, *rest: int, c: str = "x", **extra: int) -> None:
    return None


def test_arguments_round_trip_through_storage() -> None:
    signature = inspect.signature(_sig_fn)
    values = bind_arguments(signature, (1, date(2026, 3, 4), 5, 6), {"c": "y", "z": 9})
    stored = ser.dumps(values)
    restored = decode_inputs(ser, stored, _sig_fn)
    args, kwargs = call_arguments(signature, restored)
    assert args == [1, date(2026, 3, 4), 5, 6]
    assert kwargs == {"c": "y", "z": 9}
