"""Small pose helpers the scripted experts share (numpy, one env row at a time)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def quaternion_to_matrix(quaternion: FloatArray) -> FloatArray:
    """Rotation matrix of a unit quaternion (w, x, y, z)."""
    w, x, y, z = quaternion / np.linalg.norm(quaternion)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def clip_norm(vector: FloatArray, limit: float) -> FloatArray:
    """The vector, scaled down to the given length if it is longer."""
    norm = float(np.linalg.norm(vector))
    return vector if norm <= limit else vector * (limit / norm)
