"""Batched, time-synchronised, jerk-limited joint trajectories (upstream's ruckig interpolation).

Upstream plans every control step, per joint, the time-optimal trajectory from a start state
(position, velocity, zero acceleration) to rest at the target under symmetric velocity,
acceleration and jerk limits, stretches the faster joints to the slowest one's duration, and
samples it once per simulation substep. This module solves the same problem for a whole batch
of environments at once, on any torch device, without a per-environment loop.

Every profile here is "change velocity to a peak v_p, cruise at v_p, change velocity to 0",
each change at full jerk (and full acceleration when it is reached); v_p is found by bisection.
For one joint this family contains ruckig's time-optimal profile (durations agree to 1e-12 s).
A joint stretched to a slower joint's duration takes, like ruckig (position-third-step2.cpp
`get_profile`), a profile in the direction the mean velocity asks for first, and one with a
cruise phase before one without. Where ruckig stretches a joint with a profile outside this
family (an acceleration held at a non-limit, non-zero value between the two velocity changes;
seen only with the gripper's limits, where velocity changes below 0.98 rad/s never reach the
acceleration limit), this module has no profile of exactly that duration: that joint moves on
its own time-optimal profile and then waits at its target. tests/test_google_robot_control.py
bounds how often and by how much this differs from ruckig.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor


@dataclass(frozen=True)
class MotionLimits:
    """Symmetric per-joint limits of the planner (upstream's vlim, alim, jerklim)."""

    velocity: float
    acceleration: float
    jerk: float


class JointProfiles(NamedTuple):
    """Seven-phase jerk profiles, one per (environment, joint), sharing one duration per row.

    Phases: velocity change to the peak (jerk, hold, jerk), cruise, velocity change to rest.
    """

    start_position: Tensor  # (N, D)
    start_velocity: Tensor  # (N, D)
    phase_durations: Tensor  # (N, D, 7)
    phase_jerks: Tensor  # (N, D, 7)
    duration: Tensor  # (N,)


def _change_time(delta_v: Tensor, limits: MotionLimits) -> Tensor:
    """Shortest time to change velocity by |delta_v|, starting and ending at zero acceleration."""
    dv = delta_v.abs()
    a, j = limits.acceleration, limits.jerk
    trapezoid = dv / a + a / j
    triangle = 2.0 * torch.sqrt(dv / j)
    return torch.where(dv >= a * a / j, trapezoid, triangle)


def _free_time(v0: Tensor, vp: Tensor, limits: MotionLimits) -> Tensor:
    """Time of the two velocity changes v0 -> vp -> 0 (no cruise)."""
    return _change_time(vp - v0, limits) + _change_time(vp, limits)


def _free_distance(v0: Tensor, vp: Tensor, limits: MotionLimits) -> Tensor:
    """Distance of v0 -> vp -> 0; a symmetric velocity change covers its mean velocity x time."""
    return 0.5 * (v0 + vp) * _change_time(vp - v0, limits) + 0.5 * vp * _change_time(vp, limits)


def _bisect_increasing(fn: Callable[[Tensor], Tensor], lo: Tensor, hi: Tensor) -> Tensor:
    """Point where an increasing function `fn` (of the peak velocity) changes sign in [lo, hi].

    1.5 halvings per mantissa bit: times grow like sqrt(v) near v = 0, so the peak velocity
    needs about twice the dtype's relative resolution there (80 steps for float64).
    """
    for _ in range(round(-1.5 * math.log2(torch.finfo(lo.dtype).eps)) + 2):
        mid = 0.5 * (lo + hi)
        positive = fn(mid) > 0
        hi = torch.where(positive, mid, hi)
        lo = torch.where(positive, lo, mid)
    return 0.5 * (lo + hi)


def _normalise(distance: Tensor, v0: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Mirror each joint so that its start velocity is >= 0 (and the target ahead when at rest)."""
    sign = torch.where((v0 > 0) | ((v0 == 0) & (distance >= 0)), 1.0, -1.0).to(v0)
    return sign, distance * sign, v0 * sign


def minimum_durations(distance: Tensor, v0: Tensor, limits: MotionLimits) -> Tensor:
    """Per-joint shortest duration to travel `distance` from velocity `v0` and stop."""
    _, dist, v0 = _normalise(distance, v0)
    vmax = torch.full_like(v0, limits.velocity)
    stop = _free_distance(v0, torch.zeros_like(v0), limits)

    # target at or beyond the stopping distance: speed up (or keep) towards it, then brake
    far = _free_distance(v0, vmax, limits)
    cruise_up = _free_time(v0, vmax, limits) + (dist - far) / vmax
    peak_up = _bisect_increasing(
        lambda vp: _free_distance(v0, vp, limits) - dist, v0.clone(), vmax.clone()
    )
    ahead = torch.where(dist >= far, cruise_up, _free_time(v0, peak_up, limits))

    # target short of the stopping distance: brake through zero, come back
    back = _free_distance(v0, -vmax, limits)
    cruise_down = _free_time(v0, -vmax, limits) + (back - dist) / vmax
    peak_down = _bisect_increasing(
        lambda vp: _free_distance(v0, vp, limits) - dist, -vmax, torch.zeros_like(v0)
    )
    behind = torch.where(dist <= back, cruise_down, _free_time(v0, peak_down, limits))
    return torch.where(dist >= stop, ahead, behind)


def _excess_distance(
    dist: Tensor, v0: Tensor, vp: Tensor, total: Tensor, limits: MotionLimits
) -> Tensor:
    """Distance covered in `total` seconds through peak `vp`, minus the wanted one (cruise >= 0)."""
    cruise = total - _free_time(v0, vp, limits)
    return _free_distance(v0, vp, limits) + vp * cruise - dist


def _tolerance(like: Tensor) -> Tensor:
    """Numerical slack for distances and times of order `like` (bisection and rounding)."""
    return 1e3 * torch.finfo(like.dtype).eps * (1.0 + like.abs())


def _peak_velocities(dist: Tensor, v0: Tensor, total: Tensor, limits: MotionLimits) -> Tensor:
    """Normalised peak velocity of the profile lasting `total` seconds, chosen like ruckig.

    Candidates: speed up to vp >= v0 ("up"); slow to 0 <= vp <= v0, or reverse to vp < 0,
    ("down"). Ruckig tries the direction that the mean velocity asks for first, profiles with a
    cruise phase before those without.
    """
    vmax = torch.full_like(v0, limits.velocity)
    zero = torch.zeros_like(v0)
    stop = _free_distance(v0, zero, limits)

    def excess(vp: Tensor, infeasible: float) -> Tensor:
        """`_excess_distance`, or the value `infeasible` where the velocity changes need > total."""
        fits = _free_time(v0, vp, limits) <= total
        return torch.where(
            fits, _excess_distance(dist, v0, vp, total, limits), torch.full_like(vp, infeasible)
        )

    up = _bisect_increasing(lambda vp: excess(vp, 1.0), v0.clone(), vmax.clone())
    reverse = _bisect_increasing(lambda vp: excess(vp, -1.0), -vmax, zero.clone())
    # slowing: the two-stage time is symmetric about v0 / 2 and peaks there, so the peak
    # velocities that fit are [0, edge] and [v0 - edge, v0]; prefer the slow cruise
    edge = _bisect_increasing(lambda vp: _free_time(v0, vp, limits) - total, zero.clone(), v0 / 2)
    slow_low = _bisect_increasing(lambda vp: excess(vp, 1.0), zero.clone(), edge.clone())
    slow_high = _bisect_increasing(lambda vp: excess(vp, -1.0), v0 - edge, v0.clone())
    tolerance = _tolerance(dist)

    def valid(vp: Tensor) -> Tensor:
        return _excess_distance(dist, v0, vp, total, limits).abs() <= tolerance

    slow = torch.where(valid(slow_low), slow_low, slow_high)
    down = torch.where(dist >= stop, slow, reverse)
    up_first = dist > total * v0
    first = torch.where(up_first, up, down)
    second = torch.where(up_first, down, up)

    def cruises(vp: Tensor) -> Tensor:
        return total - _free_time(v0, vp, limits) > _tolerance(total)

    chosen = torch.where(valid(second), second, first)
    chosen = torch.where(valid(first), first, chosen)
    chosen = torch.where(valid(second) & cruises(second), second, chosen)
    return torch.where(valid(first) & cruises(first), first, chosen)


def _change_phases(delta_v: Tensor, limits: MotionLimits) -> tuple[Tensor, Tensor, Tensor]:
    """Jerk-ramp time, hold time and jerk sign of one velocity change."""
    dv = delta_v.abs()
    a, j = limits.acceleration, limits.jerk
    saturated = dv >= a * a / j
    ramp = torch.where(saturated, torch.full_like(dv, a / j), torch.sqrt(dv / j))
    hold = torch.where(saturated, dv / a - a / j, torch.zeros_like(dv))
    return ramp, hold, torch.sign(delta_v)


def plan(
    start_position: Tensor, start_velocity: Tensor, target: Tensor, limits: MotionLimits
) -> JointProfiles:
    """Plan (N, D) joints to rest at `target`, all joints of a row finishing together.

    Like upstream, the start acceleration is taken as zero and the start velocity must lie
    within the velocity limit (upstream clips the measured one).
    """
    distance = target - start_position
    own = minimum_durations(distance, start_velocity, limits)
    duration = own.amax(dim=-1)
    synced = duration.unsqueeze(-1).expand_as(distance)
    sign, dist, v0 = _normalise(distance, start_velocity)
    vp_synced = _peak_velocities(dist, v0, synced, limits)
    fits = _excess_distance(dist, v0, vp_synced, synced, limits).abs() <= _tolerance(dist)
    # no profile of the family lasts exactly `synced`: go time-optimally, then wait at the target
    vp = torch.where(fits, vp_synced, _peak_velocities(dist, v0, own, limits))
    total = torch.where(fits, synced, own)
    ramp1, hold1, sign1 = _change_phases(vp - v0, limits)
    ramp2, hold2, sign2 = _change_phases(-vp, limits)
    cruise = (total - 2.0 * (ramp1 + ramp2) - hold1 - hold2).clamp_min(0.0)
    zero = torch.zeros_like(vp)
    durations = torch.stack([ramp1, hold1, ramp1, cruise, ramp2, hold2, ramp2], dim=-1)
    jerk = limits.jerk * sign
    jerks = torch.stack(
        [sign1 * jerk, zero, -sign1 * jerk, zero, sign2 * jerk, zero, -sign2 * jerk], dim=-1
    )
    return JointProfiles(start_position, start_velocity, durations, jerks, duration)


def sample(profiles: JointProfiles, times: Tensor) -> tuple[Tensor, Tensor]:
    """Positions and velocities (N, S, D) at `times` (S,) seconds; after the end, the target."""
    t = times.to(profiles.start_position).reshape(1, -1, 1)
    position = profiles.start_position.unsqueeze(1).expand(-1, t.shape[1], -1)
    velocity = profiles.start_velocity.unsqueeze(1).expand_as(position)
    acceleration = torch.zeros_like(position)
    phase_start = torch.zeros_like(profiles.start_position).unsqueeze(1)
    for k in range(profiles.phase_durations.shape[-1]):
        length = profiles.phase_durations[..., k].unsqueeze(1)
        jerk = profiles.phase_jerks[..., k].unsqueeze(1)
        u = torch.minimum((t - phase_start).clamp_min(0.0), length)
        position = position + u * (velocity + u * (acceleration / 2.0 + u * jerk / 6.0))
        velocity = velocity + u * (acceleration + u * jerk / 2.0)
        acceleration = acceleration + u * jerk
        phase_start = phase_start + length
    return position, velocity
