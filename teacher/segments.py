"""Which subtask every step of an episode performs, and the spans those labels form.

With privileged state a step's subtask follows from what the recording proves: whether the
gripper is commanded closed, whether it holds the source, how far it is from the source, how
high the held source has risen and whether it hangs over the target. Without it only the
gripper channel is known, and the labels follow its closings and openings. Either way, runs
shorter than `MIN_SEGMENT_STEPS` are merged into a neighbour, so one noisy step never becomes
a segment of its own, and the spans cover every step exactly once, in order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from refinevla_bench.teacher.schema import SegmentSpan, Subtask

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]

MIN_SEGMENT_STEPS = 2
RISE_M = 0.01  # a held source this far above where it was grasped has left the table
DEPART_M = 0.02  # ... and this far sideways has started its way to the target
DESCENT_M = 0.01  # a held source this far below its highest point over the target is coming down
NEAR_MARGIN_M = 0.04  # the gripper is at the source within this of the source's half-size
MIN_OVER_RADIUS_M = 0.03  # "over the target" for targets smaller than this
GRASP_STEPS = 3  # gripper channel only: steps after a closing that count as the grasp
PLACE_STEPS = 2  # gripper channel only: steps before an opening that count as the placing


@dataclass(frozen=True)
class SceneSeries:
    """The privileged series one episode recorded, positions in the robot-base frame."""

    tcp: FloatArray  # (T, 3)
    source: FloatArray  # (T, 3)
    target: FloatArray  # (T, 3)
    source_size: FloatArray  # (3,) bounding-box extents at the start
    target_size: FloatArray  # (3,)
    grasped: BoolArray  # (T,) as recorded, debounced
    closed: BoolArray  # (T,) gripper commanded closed, debounced


def debounce(flags: BoolArray) -> BoolArray:
    """Majority of each step and its two neighbours: single-step flickers vanish."""
    if flags.size < 3:
        return flags.copy()
    padded = np.concatenate([flags[:1], flags, flags[-1:]]).astype(np.int8)
    votes = padded[:-2] + padded[1:-1] + padded[2:]
    result: BoolArray = votes >= 2
    return result


def gripper_closed(command: FloatArray, convention: str) -> BoolArray:
    """Whether the gripper is commanded closed at each step.

    Absolute commands open high and close low: +1/-1, or Bridge's 1/0 when the channel never goes
    negative. Relative commands (+1 close, -1 open, 0 keep) are integrated from an open start.
    """
    if convention == "relative":
        closed = np.zeros(command.shape[0], dtype=np.bool_)
        state = False
        for step, value in enumerate(command):
            if value > 0.5:
                state = True
            elif value < -0.5:
                state = False
            closed[step] = state
        return closed
    threshold = 0.5 if command.size and float(command.min()) >= 0.0 else 0.0
    result: BoolArray = command < threshold
    return result


def _near_source(series: SceneSeries) -> BoolArray:
    """Whether the gripper is within reach of the source's bounding box at each step."""
    reach_radius = float(series.source_size.max()) / 2 + NEAR_MARGIN_M
    near: BoolArray = np.linalg.norm(series.tcp - series.source, axis=1) <= reach_radius
    return near


def holding(series: SceneSeries) -> BoolArray:
    """Held as recorded, or still closed around a source that stays at the gripper: contact
    sensing may drop out for a step or two as the source touches down, the grasp does not."""
    near = _near_source(series)
    held = series.grasped.copy()
    for step in range(1, held.size):
        if not held[step] and held[step - 1] and series.closed[step] and near[step]:
            held[step] = True
    return held


def _runs(flags: BoolArray) -> list[tuple[int, int]]:
    """[start, end) of every run of True."""
    runs: list[tuple[int, int]] = []
    start: int | None = None
    for step, flag in enumerate(flags):
        if flag and start is None:
            start = step
        elif not flag and start is not None:
            runs.append((start, step))
            start = None
    if start is not None:
        runs.append((start, int(flags.size)))
    return runs


def _first(condition: BoolArray, offset: int, default: int) -> int:
    hits = np.flatnonzero(condition)
    return offset + int(hits[0]) if hits.size else default


def _placing_start(series: SceneSeries, start: int, end: int) -> int:
    """The step a hold starts coming down over the target, or `end` when it never does."""
    over_radius = max(MIN_OVER_RADIUS_M, float(min(series.target_size[:2])) / 2)
    horizontal = np.linalg.norm(series.source[start:end, :2] - series.target[start:end, :2], axis=1)
    not_over = np.flatnonzero(horizontal > over_radius)
    over_from = start + (int(not_over[-1]) + 1 if not_over.size else 0)
    if over_from >= end:
        return end
    heights = series.source[over_from:end, 2]
    dropped = heights < np.maximum.accumulate(heights) - DESCENT_M
    first_drop = _first(dropped, over_from, end)
    return end if first_drop == end else max(over_from, first_drop - 1)


def _hold_labels(series: SceneSeries, start: int, end: int) -> list[Subtask]:
    """grasp -> lift -> move -> place within one hold; the stages never go back."""
    source = series.source[start:end]
    rise = source[:, 2] - source[0, 2]
    sideways = np.linalg.norm(source[:, :2] - source[0, :2], axis=1)
    lift_from = _first(rise > RISE_M, start, end)
    move_from = _first(sideways > DEPART_M, start, end)
    place_from = _placing_start(series, start, end)
    labels: list[Subtask] = []
    for step in range(start, end):
        if step >= place_from or (step >= lift_from and not series.closed[step]):
            labels.append("place")
        elif step >= move_from:
            labels.append("move")
        elif step >= lift_from:
            labels.append("lift")
        else:
            labels.append("grasp")
    return labels


def label_privileged(series: SceneSeries) -> list[Subtask]:
    """Per-step subtasks from the recorded gripper, grasp and poses."""
    near = _near_source(series)
    held = holding(series)
    in_hold: dict[int, Subtask] = {}
    for start, end in _runs(held):
        in_hold.update(zip(range(start, end), _hold_labels(series, start, end), strict=True))
    labels: list[Subtask] = []
    placed = False  # the source was set down and not grasped since: open steps are a release
    for step in range(held.size):
        label = in_hold.get(step)
        if label is None and series.closed[step]:
            placed = False
            label = "grasp" if near[step] else "reach"
        elif label is None:
            label = "release" if placed else "reach"
        placed = placed or label == "place"
        labels.append(label)
    return labels


def label_gripper_only(closed: BoolArray) -> list[Subtask]:
    """Per-step subtasks from the gripper channel: reach until it closes, grasp around the
    closing, move while closed, place just before it opens, release once it has opened after
    a carry. A closing too short to have carried anything was only a grasp attempt."""
    length = int(closed.size)
    labels: list[Subtask] = ["reach"] * length
    carried_until: int | None = None
    for start, end in _runs(closed):
        carried = end - start > GRASP_STEPS + PLACE_STEPS
        grasp_end = start + GRASP_STEPS if carried else end
        place_from = end - PLACE_STEPS if carried and end < length else end
        for step in range(start, end):
            if step < grasp_end:
                labels[step] = "grasp"
            elif step < place_from:
                labels[step] = "move"
            else:
                labels[step] = "place"
        carried_until = end if carried else None
    if carried_until is not None:
        labels[carried_until:] = ["release"] * (length - carried_until)
    return labels


def _merge_short(runs: list[tuple[Subtask, int]]) -> list[tuple[Subtask, int]]:
    """Fold runs shorter than MIN_SEGMENT_STEPS into a neighbour, shortest first."""
    runs = list(runs)
    while len(runs) > 1:
        short = [index for index, (_, length) in enumerate(runs) if length < MIN_SEGMENT_STEPS]
        if not short:
            break
        index = min(short, key=lambda position: runs[position][1])
        length = runs.pop(index)[1]
        before = index - 1
        after = index  # the run that followed now sits at `index`
        if before >= 0 and after < len(runs) and runs[before][0] == runs[after][0]:
            runs[before] = (runs[before][0], runs[before][1] + length + runs.pop(after)[1])
        elif before >= 0:
            runs[before] = (runs[before][0], runs[before][1] + length)
        else:
            runs[after] = (runs[after][0], runs[after][1] + length)
    return runs


def spans_from_labels(labels: list[Subtask]) -> list[SegmentSpan]:
    """Contiguous spans of equal labels, tiny ones merged, covering every step in order."""
    runs: list[tuple[Subtask, int]] = []
    for label in labels:
        if runs and runs[-1][0] == label:
            runs[-1] = (label, runs[-1][1] + 1)
        else:
            runs.append((label, 1))
    spans: list[SegmentSpan] = []
    start = 0
    for index, (label, length) in enumerate(_merge_short(runs)):
        spans.append(SegmentSpan(segment=index, subtask=label, start=start, end=start + length))
        start += length
    return spans
