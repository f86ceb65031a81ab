"""The `hmx-mlx data` commands: `pull` benchmarks from the Hugging Face Hub, `list` what is cached.

Registered in ``cli.py`` with ``cli.add_command(data_group, "data")``; heavy imports
happen inside the commands so `hmx-mlx --help` stays fast.
"""

from __future__ import annotations

import csv
import io
import json

import click

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
LIST_COLUMNS = ("benchmark", "axes", "source", "file", "rows", "sha256", "status")

revision_option = click.option(
    "--revision-file", type=click.Path(path_type=str), default=None, envvar="HMX_MLX_REVISIONS",
    show_envvar=True, help="JSON file pinning other revisions/files (layout: docs/data.md); replaces the "
    "package's pins key by key.")


@click.group("data", context_settings=CONTEXT)
def data_group():
    """Benchmark data from the Hugging Face Hub, at the revisions pinned in the package."""


@data_group.command("pull", context_settings=CONTEXT)
@click.argument("names", nargs=-1, metavar="[BENCHMARK|AXIS...|all]")
@revision_option
def pull_command(names, revision_file):
    """Download benchmarks (default: all) into the Hugging Face cache and check their hashes.

    Names are benchmarks (bbq, mmlu, ...) or axes (bbq_ambig, sycophancy_pushback, ...).
    Exits non-zero when some benchmark is not available afterwards, saying what to do.
    """
    from ...errors import HmxError
    from .hub import load_benchmarks, pull, select

    benchmarks = select(names, load_benchmarks(revision_file))
    if not benchmarks:
        click.echo("Nothing to download: the feeling axis reads the prompt files shipped with the package.")
        return
    failed = []
    for bench in benchmarks:
        try:
            state = pull(bench)
        except HmxError as e:
            failed.append(bench.name)
            click.echo(e.message, err=True)
            continue
        rows = sum(f.rows or 0 for f in state.files)
        click.echo(f"{bench.name}: {state.label}, {len(state.files)} file(s), {rows} rows, hashes checked")
        for note in state.notes:
            click.echo(f"  note: {note}")
    if failed:
        raise HmxError(f"not available: {', '.join(failed)} (see above).")


def _table(rows: list[dict], short_sha: bool):
    from rich.table import Table

    table = Table(title="benchmark data")
    for col in LIST_COLUMNS:
        table.add_column(col, justify="right" if col == "rows" else "left", overflow="fold")
    previous = None
    for r in rows:
        rows_text = "" if r["rows"] is None else str(r["rows"])
        if r["expected_rows"] is not None and r["rows"] != r["expected_rows"]:
            rows_text += f" (expected {r['expected_rows']})"
        sha = r["sha256"][:12] + "…" if short_sha and r["sha256"] else r["sha256"]
        first = r["benchmark"] != previous  # a benchmark's name, axes and source once, on its first file
        previous = r["benchmark"]
        table.add_row(r["benchmark"] if first else "", r["axes"].replace(",", ", ") if first else "",
                      r["source"] if first else "", r["file"], rows_text.strip(), sha, r["status"])
    return table


def _fixes(rows: list[dict]) -> list[str]:
    """The commands that get what is missing or damaged: one `data pull` for the Hub, one line per upstream file."""
    pulls = list(dict.fromkeys(r["benchmark"] for r in rows if r["fix"].startswith("hmx-mlx data pull")))
    others = list(dict.fromkeys(r["fix"] for r in rows if r["fix"] and not r["fix"].startswith("hmx-mlx")))
    return ([f"hmx-mlx data pull {' '.join(pulls)}"] if pulls else []) + others


def _markdown(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(LIST_COLUMNS) + " |", "|" + "---|" * len(LIST_COLUMNS)]
    for r in rows:
        cells = ["" if r[c] is None else str(r[c]).replace("|", "\\|") for c in LIST_COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else list(LIST_COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


@data_group.command("list", context_settings=CONTEXT)
@click.argument("names", nargs=-1, metavar="[BENCHMARK|AXIS...|all]")
@click.option("--format", "fmt", type=click.Choice(["table", "markdown", "csv", "json"]), default="table",
              show_default=True, help="table: fits the terminal (full width when piped).")
@revision_option
def list_command(names, fmt, revision_file):
    """What is cached per benchmark: dataset and commit, files, rows, sha256, and what is missing."""
    from rich.console import Console
    from rich.measure import Measurement

    from .hub import inspect, load_benchmarks, select, state_rows

    rows = state_rows([inspect(b) for b in select(names, load_benchmarks(revision_file))])
    if fmt == "table":
        console = Console(highlight=False)
        table = _table(rows, short_sha=console.is_terminal)
        if not console.is_terminal:  # piped: as wide as the table needs, nothing folded
            wide = Console(width=10_000)
            console = Console(width=Measurement.get(wide, wide.options, table).maximum, highlight=False)
        console.print(table)
        fixes = _fixes(rows)
        if fixes:
            console.print("To get what is missing or damaged:", soft_wrap=True)
            for line in fixes:
                console.print(f"  {line}", soft_wrap=True)
    else:
        text = {"markdown": _markdown, "csv": _csv, "json": lambda r: json.dumps(r, indent=2) + "\n"}[fmt](rows)
        click.echo(text, nl=False)
