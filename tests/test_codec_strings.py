"""Object arrays of strings (pandas' object columns) are stored as one UTF-8 buffer, not as a
million memoized strings; every value must still come back equal."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nbstate import codec


def roundtrip(value):
    ser = codec.serialize([value], {})
    assert ser.ok, ser.error
    return ser, codec.deserialize(ser.stream, [bytearray(b) for b in ser.buffers], {})[0]


@pytest.mark.parametrize(
    "items",
    [
        [f"row-{i}" for i in range(5000)],
        ["a\x1fb", "c\x00d", "plain"] * 1000,  # separators inside the strings
        ["", "é", "日本語", "\udcff"] * 500,  # empty, non-ASCII, a lone surrogate
    ],
)
def test_string_object_arrays_round_trip_through_one_buffer(items):
    arr = np.empty(len(items), dtype=object)
    arr[:] = items
    ser, back = roundtrip(arr)
    assert back.dtype == object and back.tolist() == items
    assert len(ser.stream) < 1000 and sum(b.nbytes for b in ser.buffers) >= sum(len(s) for s in items)


def test_two_dimensional_and_fortran_order_keep_their_layout():
    arr = np.asfortranarray(np.array([[f"{r}:{c}" for c in range(3)] for r in range(2000)], dtype=object))
    _, back = roundtrip(arr)
    assert back.shape == arr.shape and (back == arr).all()


def test_mixed_object_arrays_are_pickled_as_before():
    arr = np.array(["x"] * 2000 + [None, 3, 4.5], dtype=object)
    ser, back = roundtrip(arr)
    assert back.tolist() == arr.tolist() and not ser.buffers


def test_a_dataframe_with_object_columns_is_equal_after_restore_and_unchanged_columns_hash_the_same():
    df = pd.DataFrame({"city": pd.Series([f"c{i % 97}" for i in range(100_000)], dtype=object), "v": np.arange(100_000.0)})
    ser1, back = roundtrip(df)
    assert back.equals(df) and back["city"].dtype == object
    df2 = df.copy()
    df2.loc[5, "v"] = -1.0
    ser2 = codec.serialize([df2], {})
    # the strings' buffer is identical: only the float column's bytes changed
    assert {bytes(b) for b in ser1.buffers if len(b) > 100_000} & {bytes(b) for b in ser2.buffers}
