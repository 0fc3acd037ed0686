"""Errors a user can fix, reported on one line with the fix and exit code 2."""

from __future__ import annotations

USER_ERROR_EXIT_CODE = 2

INSTALL_SIM_FIX = (
    "pip install torch==2.13.0 (CPU-only machines; GPU machines skip this), "
    "then pip install 'refinevla-bench[sim]'"
)


class HarnessError(Exception):
    """A problem caused by input or environment that the user can fix.

    The CLI turns it into a single line `error: <problem>; fix: <fix>` and exit code 2, so
    scripts can tell user mistakes apart from crashes (exit 1 with a traceback).
    """

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix

    def one_line(self) -> str:
        return f"error: {self.problem}; fix: {self.fix}"
