"""`datatype_of`: the one-step table answers exactly what the rule answers, errors included."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from inferstack.runtime import tensors
from inferstack.runtime.tensors import DATATYPE_TO_NUMPY, datatype_of


def _answer(call: Callable[[np.dtype[np.generic]], str], dtype: np.dtype[np.generic]) -> str:
    """The datatype, or the error's type and message: an error is an answer to compare too."""
    try:
        return call(dtype)
    except Exception as error:
        return f"{type(error).__name__}: {error}"


def _byte_orders(dtype: np.dtype[np.generic]) -> list[np.dtype[np.generic]]:
    return [dtype.newbyteorder(order) for order in ("=", "<", ">", "|")]


def test_every_datatype_in_either_byte_order_is_in_the_table_with_the_rules_answer() -> None:
    for name, dtype in DATATYPE_TO_NUMPY.items():
        for variant in _byte_orders(dtype):
            assert variant in tensors._DATATYPE_BY_DTYPE, (name, variant.str)
            assert datatype_of(np.empty(0, variant)) == name, variant.str
            assert tensors._datatype_by_rule(variant) == name, variant.str
    assert all(
        tensors._datatype_by_rule(dtype) == name
        for dtype, name in tensors._DATATYPE_BY_DTYPE.items()
    )


# Every scalar type numpy has (unsupported ones: complex, unicode, datetimes, void, long
# double), in each byte order, and dtypes the table cannot hold: bytes of any length,
# structured records, unicode of a length.
ANY_DTYPES = {
    (dtype.str, dtype.char): dtype
    for dtype in [
        variant
        for scalar in sorted(set(np.sctypeDict.values()), key=lambda kind: kind.__name__)
        for variant in _byte_orders(np.dtype(scalar))
    ]
    + [np.dtype(text) for text in ("S0", "S1", "S7", "U3", ">U3", "V4", "f4,>i8", "M8[s]")]
}


@pytest.mark.parametrize("dtype", ANY_DTYPES.values(), ids=[f"{s}-{c}" for s, c in ANY_DTYPES])
def test_any_dtype_gets_what_the_rule_gives_it(dtype: np.dtype[np.generic]) -> None:
    array = np.empty(0, dtype)
    assert _answer(lambda _: datatype_of(array), array.dtype) == _answer(
        tensors._datatype_by_rule, array.dtype
    )


def test_the_sweep_covers_numpys_scalar_types() -> None:
    assert len(ANY_DTYPES) > 40


def test_bytes_and_objects_are_bytes_and_the_rest_is_refused_with_the_fix() -> None:
    assert datatype_of(np.array([b"a", b"bcd"])) == "BYTES"  # |S3: by the rule
    assert datatype_of(np.array([b"a", None], dtype=object)) == "BYTES"  # by the table
    assert datatype_of(np.array([1.0], dtype=">f4")) == "FP32"
    with pytest.raises(ValueError, match=r"numpy dtype <U1 has no v2 datatype; cast it to one "):
        datatype_of(np.array(["a"]))
    with pytest.raises(ValueError, match=r"numpy dtype >c8 has no v2 datatype.*float32"):
        datatype_of(np.zeros(1, ">c8"))
