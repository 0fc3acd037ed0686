"""Which drawer expert plays an episode of the Google Robot's drawer tasks.

The open-drawer task and the first subtask of "put apple into closed top drawer" share the
instruction "open top drawer", so the instruction alone cannot tell them apart; the apple
task's privileged state has a `subtask` entry, the drawer tasks' has not.
"""

from __future__ import annotations

from refinevla_bench.policies.google_scripted_apple import PlaceAppleInDrawer
from refinevla_bench.policies.google_scripted_drawer import CloseDrawer, OpenDrawer
from refinevla_bench.policies.google_scripted_motion import Row

DrawerExpert = OpenDrawer | CloseDrawer | PlaceAppleInDrawer


def drawer_expert(instruction: str, row: Row) -> DrawerExpert | None:
    """A fresh phase machine for one row of a drawer task, or None for other tasks: needs the
    row's privileged state (`drawer_qpos` marks the drawer tasks)."""
    if "drawer_qpos" not in row:
        return None
    if "subtask" in row:
        return PlaceAppleInDrawer()
    words = instruction.lower().split()
    if words and words[0] == "close":
        return CloseDrawer()
    if words and words[0] == "open":
        return OpenDrawer()
    return None
