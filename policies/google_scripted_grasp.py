"""Where and how the Google Robot's gripper takes an object from above.

The arm reaches the table comfortably with the gripper leaning forward, as in its reset pose
(about 0.3 rad from straight down towards the base's +x): straight down is near the wrist's
joint limit on the far side of the table, where the inverse kinematics then fails and the arm
stops. The gripper comes down along that leaning axis onto the object's centre and closes
across the lean, horizontally; the pick of a lying can may turn the wrist so the fingers
close across the can's axis, on its round side (`across_long_axis`). The TCP sits at the
fingertips, whose last 3 cm are the low-friction nails (friction 0.1 against the pads' 2.0):
it goes 9 cm below an upright object's top so the pads, not the nails, close on it (at 6 cm
no standing can came up in 9 tries, at 9 cm 5 of 9); lying cans are taken 6 cm below the top
(9 cm lost them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from refinevla_bench.policies.google_scripted_motion import FloatArray, Pose, frame, unit

APPROACH_TILT = 0.3  # radians from straight down, leaning away from the shoulder
REACH_ORIGIN = np.array([-0.044, -0.161])  # the shoulder (base xy) in the reset pose
DEFAULT_CLOSING = np.array([-1.0, 0.0, 0.0])
GRASP_DEPTH = 0.06  # the TCP closes this far below a lying object's top, at most
UPRIGHT_GRASP_DEPTH = 0.09  # and this far below an upright (tall, narrow) object's top
UPRIGHT = 1.5  # upright: at least this many times as tall as it is wide
UPRIGHT_TILT = 0.1  # radians: a can tipping further than this is going down
LYING = np.cos(np.pi / 4)  # a long axis whose vertical part is below this lies on the table
FLOOR_CLEARANCE = 0.008  # the closed fingertips stay this far above the object's bottom


@dataclass(frozen=True)
class Grasp:
    """The end-effector pose that holds the object, and the way in."""

    pose: Pose

    def backed_off(self, distance: float) -> Pose:
        """The grasp pose moved `distance` back along the approach (up and towards the robot)."""
        return self.pose.moved(-distance * self.pose.rotation[:, 2])


def vertical_half_extent(rotation: FloatArray, half_size: FloatArray) -> float:
    """Half the height of the object's box (model-frame `half_size`) as it lies now."""
    return float(np.abs(rotation[2, :]) @ half_size)


def footprint_radius(rotation: FloatArray, half_size: FloatArray) -> float:
    """The object's reach from its centre in the table plane, as it lies now (a bound)."""
    return float(np.linalg.norm(np.abs(rotation[:2, :]) @ half_size))


def elongated_along(half_size: FloatArray, axis: int) -> bool:
    """The model `axis` is at least UPRIGHT times the widest other half extent (a can's or a
    bottle's length, not a sponge's)."""
    return float(half_size[axis]) >= UPRIGHT * float(np.delete(half_size, axis).max())


def is_upright(rotation: FloatArray, half_size: FloatArray) -> bool:
    """Standing tall and narrow (a standing can or bottle), as it lies now: the model axis
    nearest vertical is within UPRIGHT_TILT of it and UPRIGHT times the widest other half
    extent. (A height-to-footprint ratio missed standing cans turned about the vertical: the
    box's footprint bound grows with the turn.)"""
    vertical = int(np.argmax(np.abs(rotation[2, :])))
    standing = abs(float(rotation[2, vertical])) > np.cos(UPRIGHT_TILT)
    return standing and elongated_along(half_size, vertical)


def grasp_depth(rotation: FloatArray, half_size: FloatArray) -> float:
    return UPRIGHT_GRASP_DEPTH if is_upright(rotation, half_size) else GRASP_DEPTH


def closes_across(grasp: Grasp, obj: Pose, half_size: FloatArray) -> bool:
    """The fingers close across the object's long axis (a lying can by its round side), not
    along it (by its flat ends)."""
    axis = obj.rotation[:, int(np.argmax(half_size))]
    return bool(abs(float(grasp.pose.rotation[:, 1] @ axis)) < np.cos(np.pi / 4))


def across_long_axis(grasp: Grasp, obj: Pose, half_size: FloatArray, current: FloatArray) -> Grasp:
    """`grasp` turned about its approach so the fingers close horizontally across a lying
    elongated object's long axis (a lying can by its round side), in the one of the two
    closing directions nearest the gripper's `current` rotation; other objects keep `grasp`.

    Held up with the steady squeeze, a can closed across its axis stays in the hand where one
    taken by its flat ends slips (default texture's 25 positions, lying along the robot's y:
    ends 18/25, turned across 21/25); a can lying along x is closed exactly across its axis
    rather than across the lean (the positions that failed across the lean: 0/5 -> 5/5).
    VM grids: horizontal 72 -> 84 of 100, vertical 80 -> 100 of 100."""
    long = int(np.argmax(half_size))
    axis = obj.rotation[:, long]
    if not elongated_along(half_size, long) or abs(float(axis[2])) > LYING:
        return grasp
    rotation = frame(grasp.pose.rotation[:, 2], np.array([-axis[1], axis[0], 0.0]))
    if rotation[:, 1] @ current[:, 1] < 0:
        rotation = rotation @ np.diag([-1.0, -1.0, 1.0])  # the other way round the approach
    return Grasp(Pose(grasp.pose.position, rotation))


def approach_direction(target: FloatArray) -> FloatArray:
    """Down onto `target`, leaning outwards along the line from the shoulder, as the arm
    reaches most easily."""
    azimuth = np.arctan2(target[1] - REACH_ORIGIN[1], target[0] - REACH_ORIGIN[0])
    lean = np.sin(APPROACH_TILT)
    return np.array([lean * np.cos(azimuth), lean * np.sin(azimuth), -np.cos(APPROACH_TILT)])


def top_grasp(obj: Pose, half_size: FloatArray, current: FloatArray) -> Grasp:
    """The grasp of an object (centre pose `obj`, model-frame `half_size`) from above, its
    closing direction the one of the two equivalent ones nearest the gripper's `current`."""
    height = vertical_half_extent(obj.rotation, half_size)
    depth = grasp_depth(obj.rotation, half_size)
    z = max(obj.position[2] - height + FLOOR_CLEARANCE, obj.position[2] + height - depth)
    position = np.array([obj.position[0], obj.position[1], z])
    return Grasp(Pose(position, leaning_rotation(position, current)))


def leaning_rotation(target: FloatArray, current: FloatArray) -> FloatArray:
    """The end effector's rotation coming down onto `target` (`approach_direction`), closing
    horizontally across the lean, in the one of the two equivalent closing directions nearest
    the gripper's `current` rotation (the wrist then turns least)."""
    approach = approach_direction(target)
    closing = unit(np.cross([0.0, 0.0, 1.0], approach))
    if closing @ current[:, 1] < 0:
        closing = -closing
    return frame(approach, closing)
