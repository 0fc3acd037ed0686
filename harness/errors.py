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


# Which extra brings each optional top-level module (the first listed when several do).
_EXTRA_OF_MODULE = {
    "torch": "sim",
    "mani_skill": "sim",
    "sapien": "sim",
    "gymnasium": "sim",
    "PIL": "sim",
    "imageio": "sim",
    "pyarrow": "sim",
    "pandas": "teacher",
    "openai": "teacher",
    "pydantic": "teacher",
    "transformers": "train",
    "tokenizers": "train",
    "accelerate": "train",
    "peft": "train",
    "tensorboard": "train",
    "google_crc32c": "rlds",
    "websockets": "serve",
    "msgpack": "serve",
}


def missing_extra(error: ModuleNotFoundError) -> HarnessError | None:
    """The install command for a module an extra provides; None for anything else (a bug)."""
    module = (error.name or "").split(".")[0]
    extra = _EXTRA_OF_MODULE.get(module)
    if extra is None:
        return None
    fix = INSTALL_SIM_FIX if extra == "sim" else f"pip install 'refinevla-bench[{extra}]'"
    return HarnessError(f"this command needs the '{extra}' extra ({module} is missing)", fix)
