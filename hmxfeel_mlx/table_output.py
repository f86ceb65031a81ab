"""Tables that commands print (`models`, `doctor`, `judge-check`): a Rich table that fits the
terminal, or, when the output goes to a pipe or a file, one as wide as its content (nothing cut
to 80 columns); or the same rows as markdown, CSV or JSON (``--format``).
"""

from __future__ import annotations

import csv
import io
import json
from typing import Sequence

import click

FORMATS = ("table", "markdown", "csv", "json")

format_option = click.option(
    "--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
    help="table: fits the terminal (full width when piped); markdown, csv, json: the rows as text.")


def fitted_console(renderable, console=None):
    """``console`` on a terminal; elsewhere a console as wide as ``renderable`` needs."""
    from rich.console import Console
    from rich.measure import Measurement

    console = console or Console(highlight=False)
    if console.is_terminal:
        return console
    wide = Console(width=10_000)
    width = Measurement.get(wide, wide.options, renderable).maximum
    return Console(width=max(width, 20), highlight=False, file=console.file)


def _cell(value) -> str:
    return "" if value is None else str(value)


def rows_text(rows: list[dict], columns: Sequence[str], fmt: str) -> str:
    """``rows`` as markdown (``columns``), CSV (``columns``, then any other keys) or JSON (every key)."""
    if fmt == "json":
        return json.dumps(rows, indent=2) + "\n"
    if fmt == "csv":
        names = list(columns) + [k for r in rows for k in r if k not in columns]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(dict.fromkeys(names)), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue()
    if fmt == "markdown":
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(_cell(r.get(c)).replace("|", "\\|") for c in columns) + " |" for r in rows]
        return "\n".join(lines) + "\n"
    raise ValueError(f"unknown format {fmt!r}")


def print_rows(rows: list[dict], columns: Sequence[str], fmt: str = "table", title: str | None = None,
               right: Sequence[str] = (), styles: dict[str, dict[str, str]] | None = None,
               notes: Sequence[str] = (), console=None) -> None:
    """Print ``rows`` (dicts keyed by ``columns``) in ``fmt``; ``notes`` follow the table and the
    markdown (CSV and JSON are rows only). ``styles`` colours table cells: {column: {value: style}}."""
    if fmt != "table":
        text = rows_text(rows, columns, fmt)
        if fmt == "markdown" and notes:
            text += "\n" + "\n".join(notes) + "\n"
        click.echo(text, nl=False)
        return
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title)
    for col in columns:
        table.add_column(col, justify="right" if col in right else "left")
    for r in rows:
        table.add_row(*(Text(_cell(r.get(c)), style=(styles or {}).get(c, {}).get(_cell(r.get(c)), ""))
                        for c in columns))
    console = fitted_console(table, console)
    console.print(table)
    for line in notes:
        console.print(line, highlight=False, soft_wrap=True)
