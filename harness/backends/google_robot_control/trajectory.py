"""Batched, time-synchronised, jerk-limited joint trajectories (upstream's ruckig interpolation).

Upstream plans every control step, per joint, the time-optimal trajectory from a start state
(position, velocity, zero acceleration) to rest at the target under symmetric velocity,
acceleration and jerk limits, stretches the faster joints to the slowest one's duration, and
samples it once per simulation substep. This module solves the same problem for a whole batch
of environments at once, on any torch device, without a per-environment loop.

Every profile here is "change velocity to a peak v_p, cruise at v_p, change velocity to 0",
each change at full jerk (and full acceleration when it is reached); v_p is found by a
multi-section search (all searches of one plan in two batched calls).
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


def _changes(v0: Tensor, vp: Tensor, limits: MotionLimits) -> tuple[Tensor, Tensor]:
    """Time and distance of the two velocity changes v0 -> vp -> 0 (no cruise).

    A symmetric velocity change covers its mean velocity x its time. Computed together because
    the searches below need both at every step.
    """
    first = _change_time(vp - v0, limits)
    second = _change_time(vp, limits)
    return first + second, 0.5 * (v0 + vp) * first + 0.5 * vp * second


def _free_time(v0: Tensor, vp: Tensor, limits: MotionLimits) -> Tensor:
    """Time of the two velocity changes v0 -> vp -> 0 (no cruise)."""
    return _changes(v0, vp, limits)[0]


def _free_distance(v0: Tensor, vp: Tensor, limits: MotionLimits) -> Tensor:
    """Distance of v0 -> vp -> 0."""
    return _changes(v0, vp, limits)[1]


def _sections(device: torch.device) -> int:
    """Sub-intervals per search step: each step costs a few tensor operations whatever their size
    up to a few thousand elements on a CPU and far more on a GPU, and gains log2(sections) bits.
    Fixed per device type, so a row's result never depends on the batch it is planned in."""
    return 8 if device.type == "cpu" else 64


def _bisect_increasing(fn: Callable[[Tensor], Tensor], lo: Tensor, hi: Tensor) -> Tensor:
    """Point where an increasing function `fn` (of the peak velocity) changes sign in [lo, hi].

    A multi-section search: every step evaluates `fn` at `sections - 1` equally spaced points
    and keeps the sub-interval of the first sign change. 1.5 bits per mantissa bit: times grow
    like sqrt(v) near v = 0, so the peak velocity needs about twice the dtype's relative
    resolution there (82 bits for float64).
    """
    bits = round(-1.5 * math.log2(torch.finfo(lo.dtype).eps)) + 2
    sections = _sections(lo.device)
    shape = (sections - 1,) + (1,) * lo.dim()
    steps = torch.arange(1, sections, dtype=lo.dtype, device=lo.device)
    fractions = steps.reshape(shape) / sections
    # no autograd bookkeeping in the loop (a fifth of its cost on a CPU); the clone below is an
    # ordinary tensor again, usable in place and in autograd
    with torch.inference_mode():
        for _ in range(math.ceil(bits / math.log2(sections))):
            points = lo + (hi - lo) * fractions
            below = (~(fn(points) > 0).cummax(0).values).sum(0, keepdim=True)
            ends = torch.cat([lo.unsqueeze(0), points, hi.unsqueeze(0)])
            lo, hi = ends.gather(0, below).squeeze(0), ends.gather(0, below + 1).squeeze(0)
        middle = 0.5 * (lo + hi)
    return middle.clone()


def _normalise(distance: Tensor, v0: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Mirror each joint so that its start velocity is >= 0 (and the target ahead when at rest)."""
    sign = torch.where((v0 > 0) | ((v0 == 0) & (distance >= 0)), 1.0, -1.0).to(v0)
    return sign, distance * sign, v0 * sign


def _time_optimal(dist: Tensor, v0: Tensor, limits: MotionLimits) -> tuple[Tensor, Tensor]:
    """Shortest duration and its peak velocity, for normalised joints (`_normalise`).

    At or beyond the stopping distance the joint speeds up (or keeps) towards the target, then
    brakes; short of it, it brakes through zero and comes back. Either way it cruises at the
    velocity limit when the two velocity changes alone do not cover the distance.
    """
    vmax = torch.full_like(v0, limits.velocity)
    zero = torch.zeros_like(v0)
    ahead = dist >= _free_distance(v0, zero, limits)
    limit = torch.where(ahead, vmax, -vmax)
    limit_time, limit_distance = _changes(v0, limit, limits)
    cruising = torch.where(ahead, dist >= limit_distance, dist <= limit_distance)
    peak = _bisect_increasing(
        lambda vp: _free_distance(v0, vp, limits) - dist,
        torch.where(ahead, v0, -vmax),
        torch.where(ahead, vmax, zero),
    )
    cruise_time = limit_time + (dist - limit_distance) / limit
    duration = torch.where(cruising, cruise_time, _free_time(v0, peak, limits))
    return duration, torch.where(cruising, limit, peak)


def minimum_durations(distance: Tensor, v0: Tensor, limits: MotionLimits) -> Tensor:
    """Per-joint shortest duration to travel `distance` from velocity `v0` and stop."""
    _, dist, v0 = _normalise(distance, v0)
    return _time_optimal(dist, v0, limits)[0]


def _excess_distance(
    dist: Tensor, v0: Tensor, vp: Tensor, total: Tensor, limits: MotionLimits
) -> Tensor:
    """Distance covered in `total` seconds through peak `vp`, minus the wanted one (cruise >= 0)."""
    free_time, free_distance = _changes(v0, vp, limits)
    return free_distance + vp * (total - free_time) - dist


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
    half = v0 / 2
    slowing = dist >= _free_distance(v0, zero, limits)
    # three searches in one `_bisect_increasing` call, each where a velocity change that does
    # not fit in `total` counts as `infeasible` (+1 or -1: after or before the fitting peaks):
    # 0 "up" in [v0, vmax]; 1 where the target is at or beyond the stopping distance "slow" to
    # [0, v0 / 2], else "reverse" in [-vmax, 0]; 2 "slow" to [v0 / 2, v0]. Slowing, the
    # two-stage time is symmetric about v0 / 2 and peaks there, so the peak velocities that fit
    # are the low end of [0, v0 / 2] and the high end of [v0 / 2, v0]; prefer the slow cruise.
    lo = torch.stack([v0, torch.where(slowing, zero, -vmax), half])
    hi = torch.stack([vmax, torch.where(slowing, half, zero), v0])
    one = torch.ones_like(v0)
    infeasible = torch.stack([one, torch.where(slowing, one, -one), -one])
    dist3, v03, total3 = (x.expand_as(lo) for x in (dist, v0, total))

    def excess(vp: Tensor) -> Tensor:
        free_time, free_distance = _changes(v03, vp, limits)
        fitting = free_distance + vp * (total3 - free_time) - dist3
        return torch.where(free_time <= total3, fitting, infeasible)

    up, low, slow_high = _bisect_increasing(excess, lo, hi).unbind(0)
    tolerance = _tolerance(dist)

    def valid(vp: Tensor) -> Tensor:
        return _excess_distance(dist, v0, vp, total, limits).abs() <= tolerance

    down = torch.where(slowing & ~valid(low), slow_high, low)
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
    sign, dist, v0 = _normalise(distance, start_velocity)
    own, vp_own = _time_optimal(dist, v0, limits)
    duration = own.amax(dim=-1)
    synced = duration.unsqueeze(-1).expand_as(distance)
    vp_synced = _peak_velocities(dist, v0, synced, limits)
    fits = _excess_distance(dist, v0, vp_synced, synced, limits).abs() <= _tolerance(dist)
    # no profile of the family lasts exactly `synced`: go time-optimally, then wait at the target
    vp = torch.where(fits, vp_synced, vp_own)
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
    """Positions and velocities (N, S, D) at `times` (S,) seconds; after the end, the target.

    The state at every phase start is computed once per joint; each sample then evaluates only
    the phase it falls in (an eighth phase of length 0 holds the end state).
    """
    lengths = profiles.phase_durations
    jerks = profiles.phase_jerks
    position, velocity = profiles.start_position, profiles.start_velocity
    acceleration = torch.zeros_like(position)
    phase_start = torch.zeros_like(position)
    states = [[phase_start], [position], [velocity], [acceleration]]
    for k in range(lengths.shape[-1]):
        u, jerk = lengths[..., k], jerks[..., k]
        position = position + u * (velocity + u * (acceleration / 2.0 + u * jerk / 6.0))
        velocity = velocity + u * (acceleration + u * jerk / 2.0)
        acceleration = acceleration + u * jerk
        phase_start = phase_start + u
        for field, value in zip(
            states, (phase_start, position, velocity, acceleration), strict=True
        ):
            field.append(value)
    starts, positions, velocities, accelerations = (torch.stack(x, dim=-1) for x in states)
    ends = lengths.new_zeros((*lengths.shape[:-1], 1))
    lengths, jerks = torch.cat([lengths, ends], dim=-1), torch.cat([jerks, ends], dim=-1)
    # (fields, N, D, phases) gathered at each sample's phase: (fields, N, D, S)
    table = torch.stack([starts, lengths, positions, velocities, accelerations, jerks])
    t = times.to(position).expand(*position.shape, -1).contiguous()
    phase = torch.searchsorted(starts[..., 1:].contiguous(), t, right=True)
    at = table.gather(-1, phase.unsqueeze(0).expand(table.shape[0], -1, -1, -1))
    start, length, position, velocity, acceleration, jerk = at.unbind(0)
    u = torch.minimum((t - start).clamp_min(0.0), length)
    position = position + u * (velocity + u * (acceleration / 2.0 + u * jerk / 6.0))
    velocity = velocity + u * (acceleration + u * jerk / 2.0)
    return position.transpose(1, 2).contiguous(), velocity.transpose(1, 2).contiguous()
