"""Every `hmx-mlx ...` command the documentation shows, checked against the command line.

    python tools/doc_commands.py            # README.md, docs/*.md and the Makefile; exit 1 on a problem

Where commands are found:

- code blocks (fenced as bash/sh/shell/console or unlabelled, and indented blocks): every line
  that starts with ``hmx-mlx`` (after an optional ``$`` or ``time``), a trailing ``\\`` joining
  the next line, a ``#`` comment dropped. These are commands to type: the subcommand must
  exist and click must parse the arguments as written (option names, values, choices,
  ranges, required arguments), stopping before any work (``Command.make_context``); for
  ``eval`` and ``replicate`` the ``--axes`` value must name known axes.
- inline code spans in the text and in tables (`hmx-mlx compare`, `hmx-mlx eval TARGET`):
  references, often to a command without its arguments: the subcommand and the options they
  name must exist, and they must parse unless an argument or an option's value is left out.
- the Makefile's recipes (``$(VENV)/bin/hmx-mlx ...``), checked like code blocks.

``tests/test_docs_commands.py`` runs this check and runs the cheap commands for real on
synthetic run folders, evaluation files and an experiment.
"""

from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parent.parent
SHELL_FENCES = ("", "bash", "sh", "shell", "console", "zsh")
FENCE = re.compile(r"^\s*(```+|~~~+)\s*([\w+-]*)")
PROMPT = re.compile(r"^\s*(?:\$\s+)?(?:time\s+)?(hmx-mlx(?:\s.*)?)$")
INLINE = re.compile(r"`([^`]+)`")
MAKE_RECIPE = re.compile(r"\S*/bin/hmx-mlx\b(.*)$")


@dataclass
class DocCommand:
    source: str  # file:line
    text: str  # as written (continuations joined)
    argv: list[str]  # after "hmx-mlx"
    kind: str  # "block" (a command to type) or "inline" (a reference)

    def __str__(self) -> str:
        return f"{self.source}: {self.text}"


def _split(text: str) -> list[str]:
    return shlex.split(text, comments=True)[1:]  # without "hmx-mlx"


def block_commands(lines: list[tuple[int, str]], source: str) -> list[DocCommand]:
    """Commands in the lines of one code block (continuations joined)."""
    out, pending, start = [], "", 0
    for number, line in lines:
        if not pending:
            m = PROMPT.match(line)
            if not m:
                continue
            pending, start = m.group(1), number
        else:
            pending += " " + line.strip()
        if pending.rstrip().endswith("\\"):
            pending = pending.rstrip()[:-1].rstrip()
            continue
        text = pending.split(" #")[0].rstrip()
        out.append(DocCommand(f"{source}:{start}", text, _split(pending), "block"))
        pending = ""
    return out


def markdown_commands(text: str, source: str) -> list[DocCommand]:
    """The block and inline commands of one Markdown file, in order."""
    commands: list[DocCommand] = []
    prose: list[str] = []  # the text outside code blocks, for the inline spans
    block: list[tuple[int, str]] | None = None
    fence = ""
    lines = text.splitlines()
    for number, line in enumerate(lines, 1):
        m = FENCE.match(line)
        if fence.startswith("skip:"):  # inside a block of another language (text, json, python)
            if m and m.group(1).startswith(fence[5:]) and not m.group(2):
                fence = ""
            prose.append("")
            continue
        if block is None and m:
            fence, lang = m.group(1), m.group(2).lower()
            block = [] if lang in SHELL_FENCES else None
            if block is None:
                fence = "skip:" + fence
            prose.append("")
            continue
        if block is not None:
            if m and m.group(1).startswith(fence) and not m.group(2):
                commands += block_commands(block, source)
                block, fence = None, ""
            else:
                block.append((number, line))
            prose.append("")
            continue
        if line.startswith("    ") and PROMPT.match(line):  # an indented code block
            commands += block_commands([(number, line)], source)
            prose.append("")
            continue
        prose.append(line)
    joined = "\n".join(prose)
    for m in INLINE.finditer(joined):
        span = " ".join(m.group(1).split())
        found = PROMPT.match(span)
        if found:
            number = joined.count("\n", 0, m.start()) + 1
            words = found.group(1).split()
            commands.append(DocCommand(f"{source}:{number}", found.group(1), words[1:], "inline"))
    return sorted(commands, key=lambda c: int(c.source.rsplit(":", 1)[1]))


def makefile_commands(text: str, source: str) -> list[DocCommand]:
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        m = MAKE_RECIPE.search(line)
        if m and line.startswith("\t"):
            text_ = "hmx-mlx" + m.group(1)
            out.append(DocCommand(f"{source}:{number}", text_, _split(text_), "block"))
    return out


def documented_commands(root: Path = ROOT) -> list[DocCommand]:
    """Every command of README.md, docs/*.md and the Makefile."""
    found = []
    for path in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        found += markdown_commands(path.read_text(encoding="utf-8"), str(path.relative_to(root)))
    makefile = root / "Makefile"
    if makefile.is_file():
        found += makefile_commands(makefile.read_text(encoding="utf-8"), "Makefile")
    return found


def resolve(group: click.Group, argv: list[str]) -> tuple[click.Command | None, list[str], list[str]]:
    """(the subcommand, its arguments, the names leading to it); None when a name is unknown."""
    command: click.Command = group
    names: list[str] = []
    rest = list(argv)
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        sub = command.commands.get(rest[0])
        names.append(rest[0])
        if sub is None:
            return None, rest[1:], names
        command, rest = sub, rest[1:]
    return command, rest, names


def option_names(command: click.Command) -> set[str]:
    names = {"--help", "-h"}
    for p in command.params:
        if isinstance(p, click.Option):
            names.update(p.opts + p.secondary_opts)
    return names


def check(cmd: DocCommand, group: click.Group | None = None) -> str | None:
    """What is wrong with a documented command (None when nothing is)."""
    if group is None:
        from hmxfeel_mlx.cli import cli as group
    command, rest, names = resolve(group, cmd.argv)
    if command is None:
        return f"no such command: hmx-mlx {' '.join(names)}"
    if command is group:
        return None if not rest else f"hmx-mlx needs a subcommand first, not {rest[0]!r}"
    if cmd.kind == "inline":
        known = option_names(command)
        for token in rest:
            for piece in token.strip("[](),").split("|"):
                opt = piece.split("=")[0]
                if opt.startswith("-") and opt not in known and not re.fullmatch(r"-?\d+(\.\d*)?", opt):
                    return f"hmx-mlx {' '.join(names)} has no option {opt}"
    try:
        ctx = command.make_context(" ".join(names), list(rest))
    except click.MissingParameter as e:
        return None if cmd.kind == "inline" else f"does not parse: {e.format_message()}"
    except click.BadOptionUsage as e:
        if cmd.kind == "inline" and "requires an argument" in e.format_message():
            return None  # a reference to an option ("`hmx-mlx generate --adapter`")
        return f"does not parse: {e.format_message()}"
    except click.ClickException as e:
        return f"does not parse: {e.format_message()}"
    axes = ctx.params.get("axes")
    if names[-1] in ("eval", "replicate") and isinstance(axes, str):
        from hmxfeel_mlx.errors import HmxError
        from hmxfeel_mlx.evals.runner import parse_axes

        try:
            parse_axes(axes)
        except HmxError as e:
            return f"--axes {axes}: {e.message}"
    return None


def main() -> int:
    problems = [(c, check(c)) for c in documented_commands()]
    problems = [(c, p) for c, p in problems if p]
    for c, p in problems:
        print(f"{c}\n  {p}")
    print(f"{len(documented_commands())} documented commands, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
