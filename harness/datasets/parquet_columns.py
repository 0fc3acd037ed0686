"""Per-frame values to parquet columns and back, with the column types LeRobot uses.

Shape (1,) is a plain column (LeRobot's `Value`); other shapes are fixed-size lists, nested
once per axis. Reading accepts fixed-size and variable-size lists alike, since conversions on
the Hugging Face hub write either.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from refinevla_bench.harness.datasets.features import FeatureSpec

ColumnValues = npt.NDArray[Any] | Sequence[str]


def arrow_column(values: ColumnValues, spec: FeatureSpec, length: int) -> pa.Array[Any]:
    """A column of `length` frames; raises ValueError when `values` does not fit `spec`."""
    if spec.is_string:
        texts = list(values)
        if len(texts) != length or not all(isinstance(text, str) for text in texts):
            raise ValueError(f"a string feature needs {length} str values, got {len(texts)}")
        return pa.array(texts, type=pa.string())
    array = np.asarray(values, dtype=np.dtype(spec.dtype))
    try:
        array = array.reshape(length, *spec.shape)
    except ValueError as error:
        raise ValueError(
            f"values of shape {array.shape} do not fit {length} frames of shape {spec.shape}"
        ) from error
    if spec.shape == (1,):
        scalars: pa.Array[Any] = pa.array(array.reshape(length))
        return scalars
    column: pa.Array[Any] = pa.array(array.reshape(-1))
    for size in reversed(spec.shape):
        column = pa.FixedSizeListArray.from_arrays(column, size)
    return column


LIST_ARRAYS = (pa.ListArray, pa.LargeListArray, pa.FixedSizeListArray)


def numpy_column(column: pa.ChunkedArray[Any] | pa.Array[Any]) -> npt.NDArray[Any]:
    """(frames, *shape) values of a numeric column, or (frames,) strings as objects."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    frames = len(array)
    dims: list[int] = []
    items = frames
    while isinstance(array, LIST_ARRAYS):
        array = array.flatten()
        dims.append(len(array) // items if items else 0)
        items = len(array)
    values: npt.NDArray[Any] = array.to_numpy(zero_copy_only=False)
    return values.reshape(frames, *dims)


def image_bytes(column: pa.ChunkedArray[Any] | pa.Array[Any]) -> list[bytes | None]:
    """The encoded images of an `image` feature: a struct {bytes, path} per frame."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if isinstance(array, pa.StructArray):
        array = array.field("bytes")
    return list(array.to_pylist())
