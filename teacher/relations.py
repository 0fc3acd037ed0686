"""The one direction vocabulary every rationale uses, and the frame it is defined in.

Directions are stated in the robot-base frame (+x forward, away from the robot; +y to the
robot's left; +z up), never from the camera's point of view: the camera moves between datasets,
the robot does not. "In front of" and "behind" are left out on purpose: they read differently
from the camera and from the robot. Offsets smaller than the dead zone state no direction, so
recording noise never turns into a claim.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import numpy.typing as npt

Direction = Literal["left", "right", "farther", "closer", "above", "below"]

DEAD_ZONE_M = 0.02

# (axis index, word for a positive offset, word for a negative one), in the order they are stated
_AXES: tuple[tuple[int, Direction, Direction], ...] = (
    (1, "left", "right"),
    (0, "farther", "closer"),
    (2, "above", "below"),
)

OPPOSITE: dict[Direction, Direction] = {
    "left": "right",
    "right": "left",
    "farther": "closer",
    "closer": "farther",
    "above": "below",
    "below": "above",
}

# how a direction reads in a sentence "<subject> is <phrase> <reference>"
PHRASES: dict[Direction, str] = {
    "left": "to the left of",
    "right": "to the right of",
    "farther": "farther from the robot than",
    "closer": "closer to the robot than",
    "above": "above",
    "below": "below",
}


def frame_definition() -> dict[str, Any]:
    """The frame and vocabulary in words, sent with the facts so a reader needs nothing else."""
    return {
        "origin": "the robot's base",
        "x": "forward, away from the robot's base",
        "y": "to the robot's left",
        "z": "up",
        "units": "metres",
        "dead_zone_m": DEAD_ZONE_M,
        "directions": {
            "left": "subject has larger y: on the robot's left of the reference",
            "right": "subject has smaller y: on the robot's right of the reference",
            "farther": "subject has larger x: farther forward from the robot than the reference",
            "closer": "subject has smaller x: nearer the robot's base than the reference",
            "above": "subject has larger z: higher than the reference",
            "below": "subject has smaller z: lower than the reference",
        },
        "phrases": dict(PHRASES),
    }


def directions_between(
    subject: npt.NDArray[np.float64],
    reference: npt.NDArray[np.float64],
    dead_zone: float = DEAD_ZONE_M,
) -> tuple[Direction, ...]:
    """The directions of subject from reference, one per axis whose offset passes the dead zone."""
    offset = subject - reference
    directions: list[Direction] = []
    for axis, positive, negative in _AXES:
        if offset[axis] > dead_zone:
            directions.append(positive)
        elif offset[axis] < -dead_zone:
            directions.append(negative)
    return tuple(directions)


def describe_directions(directions: tuple[Direction, ...]) -> str:
    """The directions as one phrase ending where the reference goes: "to the left of and above"."""
    phrases = [PHRASES[direction] for direction in directions]
    if not phrases:
        return ""
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]
