"""A command group whose first subcommand is also what the bare group name runs, so
`annotate D --teacher grounded` and `annotate report D` both read naturally."""

from __future__ import annotations

from typing import Any

from typer.core import TyperGroup

HELP_FLAGS = ("--help", "-h")


class DefaultCommandGroup(TyperGroup):
    """Arguments that do not start with a known subcommand go to the first one."""

    # Any: typer >= 0.2x vendors click, older typer uses click itself; both pass a Context
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        default = next(iter(self.commands), None)
        if default and args and args[0] not in self.commands and args[0] not in HELP_FLAGS:
            args = [default, *args]
        return super().parse_args(ctx, args)
