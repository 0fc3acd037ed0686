"""A table in the paper's layout as Markdown or LaTeX, for people to read.

One readable cell per number (`41.7 [30.1, 54.3] n=72`), with markers and footnotes for stand-in
assets, incomplete means, cells from part of a task's grid and published means that do not
match their row.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from refinevla_bench.harness.tables.layout import Cell, Mean
from refinevla_bench.harness.tables.reference import ReferenceRow
from refinevla_bench.harness.tables.stats import AveragedRate
from refinevla_bench.harness.tables.table import RunRow, Table


class Mark(Enum):
    STANDIN = "standin"  # a run made with stand-in assets
    INCOMPLETE = "incomplete"  # a run mean left out because a task has no episodes
    PARTIAL = "partial"  # a run cell or mean that reads a task run on part of its grid
    FLAGGED = "flagged"  # a published mean that is not the mean of its row


@dataclass(frozen=True)
class Text:
    text: str
    mark: Mark | None = None


@dataclass(frozen=True)
class Section:
    """A separator row with a title, above the published rows."""

    title: str


Row = list[Text] | Section


@dataclass(frozen=True)
class TextTable:
    title: str
    header: list[str]
    rows: list[Row]
    notes: list[Text]  # footnotes, each with the mark it explains (None: a plain note)


def text_table(table: Table) -> TextTable:
    """The table as marked-up text cells, shared by the Markdown and LaTeX renderers."""
    layout = table.layout
    rows: list[Row] = [_run_cells(table, row) for row in table.runs]
    if table.reference:
        rows.append(Section("published"))
        rows.extend(_reference_cells(table, row) for row in table.reference)
    return TextTable(
        title=f"{layout.title}; cells: rate [95% Wilson interval] n=trials",
        header=["model", *(column.header for column in layout.columns)],
        rows=rows,
        notes=_notes(table),
    )


def _run_cells(table: Table, row: RunRow) -> list[Text]:
    texts = [Text(row.run.label, Mark.STANDIN if row.run.standins_used else None)]
    for column in table.layout.columns:
        partial = Mark.PARTIAL if column.key in row.partial else None
        if isinstance(column, Cell):
            texts.append(Text(_proportion(row.cells[column.key]), partial))
        else:
            mean = row.means[column.key]
            texts.append(
                Text("-", Mark.INCOMPLETE) if mean is None else Text(f"{mean:.1f}", partial)
            )
    return texts


def _proportion(value: AveragedRate | None) -> str:
    if value is None:
        return "-"
    low, high = value.interval
    return f"{100 * value.rate:.1f} [{100 * low:.1f}, {100 * high:.1f}] n={value.trials}"


def _reference_cells(table: Table, row: ReferenceRow) -> list[Text]:
    texts = [Text(row.model)]
    for column in table.layout.columns:
        printed = row.printed[column.key] or "-"
        flagged = isinstance(column, Mean) and row.mean_checks[column.key].flagged
        texts.append(Text(printed, Mark.FLAGGED if flagged else None))
    return texts


def _notes(table: Table) -> list[Text]:
    notes: list[Text] = []
    if any(row.run.standins_used for row in table.runs):
        notes.append(
            Text(
                "run made with stand-in assets: for tests and smoke runs, "
                "not comparable with published numbers",
                Mark.STANDIN,
            )
        )
    if not all(row.complete for row in table.runs):
        notes.append(
            Text("mean shown only when every task it averages has episodes", Mark.INCOMPLETE)
        )
    notes.extend(_shortfall_note(row) for row in table.runs if row.shortfalls)
    for row in table.reference:
        for mean in table.layout.means:
            check = row.mean_checks[mean.key]
            if check.flagged and check.computed is not None:
                notes.append(
                    Text(
                        f"{row.model}: the published {mean.header} {row.printed[mean.key]} is "
                        f"not the mean of its row ({check.computed:.2f}); shown as published",
                        Mark.FLAGGED,
                    )
                )
    notes.extend(Text(_run_note(row)) for row in table.runs)
    sources: dict[str, list[str]] = {}
    for row in table.reference:
        version = f" ({row.paper_version})" if row.paper_version else ""
        sources.setdefault(f"{row.source}{version}", []).append(row.model)
    notes.extend(Text(f"published: {', '.join(models)}: {src}") for src, models in sources.items())
    return notes


def _shortfall_note(row: RunRow) -> Text:
    several_suites = len({short.suite for short in row.shortfalls}) > 1
    tasks = ", ".join(
        f"{f'{short.suite} ' if several_suites else ''}{short.task} {short.episodes}/{short.grid}"
        for short in row.shortfalls
    )
    return Text(
        f"{row.run.label}: part of the grid only (episodes run / full grid): {tasks}; a smoke "
        "number until `run` without --episodes, on the same --out, completes it",
        Mark.PARTIAL,
    )


def _run_note(row: RunRow) -> str:
    run = row.run
    return (
        f"{run.label}: {', '.join(map(str, run.paths))}; "
        f"seeds {', '.join(map(str, run.seeds)) or '-'}; "
        f"success mode {run.success_mode or 'not recorded'}; "
        f"{run.errors} episodes ended in an error (counted as failures)"
    )


MARKDOWN_MARKS = {
    Mark.STANDIN: "†",
    Mark.INCOMPLETE: "‡",
    Mark.PARTIAL: "¶",
    Mark.FLAGGED: "§",
}
LATEX_MARKS = {
    Mark.STANDIN: r"\textsuperscript{\dag}",
    Mark.INCOMPLETE: r"\textsuperscript{\ddag}",
    Mark.PARTIAL: r"\textsuperscript{\P}",
    Mark.FLAGGED: r"\textsuperscript{\S}",
}


def to_markdown(table: Table) -> str:
    text = text_table(table)

    def cell(value: Text) -> str:
        mark = MARKDOWN_MARKS[value.mark] if value.mark else ""
        return value.text.replace("|", r"\|") + mark

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cells) + " |"

    blank = [""] * (len(text.header) - 1)
    lines = [f"**{text.title}**", "", line(text.header), line(["---"] * len(text.header))]
    for row in text.rows:
        lines.append(
            line([f"*{row.title}*", *blank] if isinstance(row, Section) else [cell(c) for c in row])
        )
    lines.append("")
    lines.extend(
        f"- {MARKDOWN_MARKS[note.mark]} {note.text}" if note.mark else f"- {note.text}"
        for note in text.notes
    )
    return "\n".join(lines) + "\n"


_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIALS.get(char, char) for char in text)


def to_latex(table: Table) -> str:
    """A self-contained tabular (no packages needed); title and footnotes are spanning rows."""
    text = text_table(table)
    width = len(text.header)

    def cell(value: Text) -> str:
        return latex_escape(value.text) + (LATEX_MARKS[value.mark] if value.mark else "")

    def spanning(content: str) -> str:
        return rf"\multicolumn{{{width}}}{{l}}{{{content}}} \\"

    lines = [
        rf"\begin{{tabular}}{{l{'c' * (width - 1)}}}",
        r"\hline",
        spanning(latex_escape(text.title)),
        r"\hline",
        " & ".join(latex_escape(header) for header in text.header) + r" \\",
        r"\hline",
    ]
    for row in text.rows:
        if isinstance(row, Section):
            lines.extend([r"\hline", spanning(rf"\textit{{{latex_escape(row.title)}}}")])
        else:
            lines.append(" & ".join(cell(value) for value in row) + r" \\")
    lines.append(r"\hline")
    for note in text.notes:
        mark = LATEX_MARKS[note.mark] + " " if note.mark else ""
        lines.append(spanning(mark + latex_escape(note.text)))
    lines.append(r"\end{tabular}")
    return "\n".join(lines) + "\n"
