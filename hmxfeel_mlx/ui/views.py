"""Renderables shared by the dashboard, the inspector and the report.

Each is pure: state in, renderable out. Those that must fit a region read the
height Rich offers (``options.height``, set inside a Layout).
"""

from __future__ import annotations

import math

from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table
from rich.text import Text

from ..training.selection import CALIBRATED
from .charts import LineChart, Series, sparkline
from .state import RunState, reward_name, score_key, selection, threshold, train_scores

TRAIN_STYLE, HELDOUT_STYLE = "cyan", "magenta"
BEST_STYLE, WORST_STYLE = "bold green", "red"


def num(v, fmt: str = ".2f") -> str:
    return "-" if not isinstance(v, (int, float)) or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def one_line(text: str) -> str:
    """Whitespace (newlines included) collapsed, for views that give a completion one or a few lines."""
    return " ".join(str(text).split())


def clip_lines(text: str | Text, console: Console, width: int, lines: int, style: str = "") -> Text:
    """``text`` wrapped to ``width`` and cut to ``lines`` lines, ending in an ellipsis when cut."""
    t = text if isinstance(text, Text) else Text(text, style=style)
    if lines == 1:  # fill the line rather than stop at the last whole word
        t = t.copy()
        t.truncate(max(1, width), overflow="ellipsis")
        return t
    wrapped = t.wrap(console, max(1, width), overflow="fold")
    if len(wrapped) <= lines:
        return Text("\n").join(wrapped)
    kept = list(wrapped)[:lines]
    last = kept[-1]
    last.truncate(max(1, width - 1))
    last.rstrip()
    last.append("…")
    return Text("\n").join(kept)


def threshold_text(config: dict) -> str:
    value, op = threshold(config)
    return f"{'≥' if op == '>=' else '≤'} {value:g}"


def reward_chart(state: RunState, height: int | None = None) -> LineChart:
    """The training replies' score per step beside the held-out score per evaluation, both on the
    scale the selection threshold is on (``state.train_scores``), with the threshold; the x axis
    marks checkpoints (┴) and the selected one (▲). The reward, which in reverse runs is not the
    score, is named beside the chart (``reward_text``), not drawn on this axis."""
    key = score_key(state)  # the score the threshold is on: calibrated when the run has it
    held = [(m["step"], m.get(key)) for m in state.evals]
    trained = train_scores(state)
    train = trained[0] if trained else []
    selected = selection(state)["step"]
    marks = {m["step"]: "┴" for m in state.evals if m["step"] > 0}
    if selected is not None:
        marks[selected] = "▲"
    x_max = max([state.total_steps] + [s for s, _ in train + held]) or 1
    series = [Series("train score", train, "•", TRAIN_STYLE)] if trained else []
    return LineChart(series + [Series("held-out score", held, "◆", HELDOUT_STYLE, connect=False)],
                     x_max=x_max, threshold=threshold(state.config)[0], height=height, x_marks=marks)


def chart_title(state: RunState) -> str:
    """What the chart's y axis is: the forward rubric's score, calibrated or raw."""
    return "score · forward rubric · " + ("calibrated 0-10" if score_key(state) == CALIBRATED else "raw judge")


class Legend:
    """Legend items, in the longest wording that fits on one line of the width Rich offers; in the
    shortest, a whole item per line where even that does not fit."""

    def __init__(self, variants: list[list[tuple[str, str]]]):
        self.variants = variants  # longest first: [(text, style), ...] each

    @staticmethod
    def length(items: list[tuple[str, str]]) -> int:
        return sum(len(t) for t, _ in items) + 2 * (len(items) - 1)

    def lines(self, width: int) -> list[Text]:
        items = next((v for v in self.variants if self.length(v) <= width), self.variants[-1])
        lines = [Text()]
        for text, style in items:
            if lines[-1].cell_len and lines[-1].cell_len + 2 + len(text) > width:
                lines.append(Text())
            if lines[-1].cell_len:
                lines[-1].append("  ")
            lines[-1].append(text, style)
        for line in lines:
            line.no_wrap, line.overflow = True, "ellipsis"
        return lines

    @property
    def plain(self) -> str:
        return "  ".join(t for t, _ in self.variants[0])

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield from self.lines(options.max_width)


def reward_legend(state: RunState) -> Legend:
    """The chart's legend: what each series is, the threshold and the selection mark."""
    trained = train_scores(state)
    scale = "calibrated" if score_key(state) == CALIBRATED else "raw"
    thr = threshold_text(state.config)
    if trained is None:
        train = [("train: reversed rubric, not charted", "dim"), ("train: not charted", "dim"), ("", "")]
    else:
        train = [(f"• train score ({scale})", TRAIN_STYLE), ("• train score", TRAIN_STYLE), ("• train", TRAIN_STYLE)]
    held = [(f"◆ held-out score ({scale})", HELDOUT_STYLE), ("◆ held-out score", HELDOUT_STYLE),
            ("◆ held-out" + (" only" if trained is None else ""), HELDOUT_STYLE)]
    rest = [[(f"╌ threshold {thr}", "yellow"), ("▲ selected", "")]] * 2 + [[(f"╌ {thr}", "yellow"), ("▲ selected", "")]]
    return Legend([[item for item in (t, h, *r) if item[0]] for t, h, r in zip(train, held, rest)])


def reward_text(state: RunState) -> str:
    """The newest training reward and what it is ("= 10 - score" in a complement-rewarded reverse run)."""
    last = state.train_metrics[-1] if state.train_metrics else {}
    return f"train reward {num(last.get('reward_mean'))} = {reward_name(state.config)}"


def heldout_parts(state: RunState) -> list[str]:
    """How the held-out score moved since the base (raw and calibrated side by side when the run
    has calibrated scores), the selected checkpoint, the KL to the base on the held-out replies,
    and their length: most important first."""
    evals = state.evals
    if not evals:
        return ["held-out: no evaluation yet"]
    first, last = evals[0], evals[-1]
    sel = selection(state)
    chosen = f"selected step_{sel['step']}" if sel["step"] is not None else "selected none"
    chosen += f" ({sel['reason']})" if sel["reason"] else ""

    def moved(key: str) -> str:
        text = num(first.get(key))
        if last is not first:
            text += f" → {num(last.get(key))} ± {num(last.get(key + '_se'))}"
        return text

    step = f" (step {last['step']})" if last is not first else ""
    if score_key(state) != CALIBRATED:
        scores = f"held-out {moved('eval_score')}{step}"
    else:
        scores = f"held-out calibrated {moved('eval_score_cal')} · raw {moved('eval_score')}{step}"
    if "eval_kl_reply" in last:
        kl = (f"KL to base (held-out, per token / per reply) {num(last.get('eval_kl'), '.3f')} / "
              f"{num(last.get('eval_kl_reply'))} ± {num(last.get('eval_kl_reply_se'))}")
    else:
        kl = f"KL to base (held-out, per token) {num(last.get('eval_kl'), '.3f')}"
    extra = f"{num(last.get('eval_len'), '.0f')} tokens per reply" if "eval_len" in last else ""
    if "eval_judge_score_mass" in last:
        extra += (" · " if extra else "") + f"judge mass {num(last['eval_judge_score_mass'], '.3f')}"
    return [p for p in (scores, chosen, kl, extra) if p]


def pack_parts(parts: list[str], width: int, sep: str = " · ") -> list[str]:
    """Parts joined with ``sep`` into lines of at most ``width`` (a part longer than that gets its own line)."""
    lines: list[str] = []
    for part in parts:
        if lines and len(lines[-1]) + len(sep) + len(part) <= width:
            lines[-1] += sep + part
        else:
            lines.append(part)
    return lines


def heldout_lines(state: RunState, width: int | None = None, most: int | None = None) -> list[Text]:
    """``heldout_parts`` one per line, or packed into lines of ``width`` (at most ``most`` lines,
    the less important parts left out first), each cut with an ellipsis if still too long."""
    parts = heldout_parts(state)
    lines = parts if width is None else pack_parts(parts, width)
    if most is not None:
        lines = lines[:most]
    out = []
    for line in lines:
        text = Text(line, style="dim" if line.endswith("no evaluation yet") else "")
        if width is not None:
            text.no_wrap, text.overflow = True, "ellipsis"
            text.truncate(width, overflow="ellipsis")
        out.append(text)
    return out


class RewardView:
    """The score chart filling the space it is given, above its legend."""

    def __init__(self, state: RunState):
        self.state = state

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        height = options.height or 12
        legend = reward_legend(self.state).lines(options.max_width)
        yield reward_chart(self.state, height=max(4, height - len(legend)))
        yield from legend


def health_rows(state: RunState) -> list[tuple[str, str, str]]:
    """(label, newest value, metric key for the trend), most important first."""
    last = state.train_metrics[-1] if state.train_metrics else {}
    c = state.config
    replies = (c.get("group_size") or 0) * (c.get("prompts_per_step") or 0)
    nan = last.get("judge_nan")
    return [
        ("KL train (k3)", num(last.get("kl"), ".4f"), "kl"),
        ("entropy", num(last.get("entropy")), "entropy"),
        ("clip ratio", num(last.get("clip_ratio/region_mean"), ".3f"), "clip_ratio/region_mean"),
        ("zero-spread", num(last.get("frac_reward_zero_std")), "frac_reward_zero_std"),
        ("judge NaN", "-" if nan is None else f"{nan}/{replies or '?'}", "judge_nan"),
        ("length", f"{num(last.get('completion_len'), '.0f')} tok {num(last.get('truncated_ratio'), '.0%')} cut",
         "completion_len"),
        ("rollout", f"{num(last.get('rollout_s'), '.0f')}s {num(last.get('rollout_tok_s'), '.0f')} tok/s",
         "rollout_tok_s"),
        ("judge", f"{num(last.get('judge_s'), '.0f')}s {num(last.get('judge_replies_s'), '.1f')} rep/s",
         "judge_replies_s"),
        ("update", f"{num(last.get('update_s'), '.0f')}s {num(last.get('update_tok_s'), '.0f')} tok/s",
         "update_tok_s"),
        ("grad norm", num(last.get("grad_norm")), "grad_norm"),
        ("repetition", num(last.get("degenerate_ratio")), "degenerate_ratio"),
        ("step time", f"{num(last.get('step_s'), '.0f')}s", "step_s"),
    ]


class HealthView:
    """The newest step's health metrics, each with a sparkline of its trend over the steps
    (as many of the newest steps as the width allows); rows that do not fit are left out."""

    def __init__(self, state: RunState):
        self.state = state

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        rows = health_rows(self.state)[: options.height or None]
        label_w = max(len(r[0]) for r in rows)
        value_w = max(len(r[1]) for r in rows)
        trend_w = options.max_width - label_w - value_w - 2
        steps = self.state.train_metrics
        for label, value, key in rows:
            line = Text.assemble((label.ljust(label_w), "bold"), " ", value.rjust(value_w))
            if trend_w >= 3:
                line.append(" " + sparkline([m.get(key, float("nan")) for m in steps], trend_w), "cyan")
            line.no_wrap, line.overflow = True, "crop"
            yield line


def merit(row: dict, direction: str = "forward") -> float | None:
    """How good a reply is for the run's own direction, higher is better: the reward training pushes
    towards (in reverse runs rewarded with 10 - score it is not the judge's score, nor for floored
    degenerate replies); held-out replies have only the forward rubric's score, which a reverse run
    wants low."""
    value = row.get("reward")
    if isinstance(value, (int, float)) and math.isfinite(value):
        return value
    score = row.get("score")
    if "reward" in row or not isinstance(score, (int, float)) or not math.isfinite(score):
        return None
    return score if direction == "forward" else -score


def best_and_worst(rows: list[dict], direction: str = "forward") -> tuple[int | None, int | None]:
    """Indices of the best and the worst reply by ``merit`` (None when fewer than two differ)."""
    scored = [(merit(r, direction), i) for i, r in enumerate(rows) if merit(r, direction) is not None]
    if len(scored) < 2 or min(scored)[0] == max(scored)[0]:
        return None, None
    best = max(scored, key=lambda t: (t[0], -t[1]))[1]
    worst = min(scored, key=lambda t: (t[0], t[1]))[1]
    return best, worst


def best_first(rows: list[dict], direction: str = "forward") -> list[int]:
    """Row indices, best ``merit`` first (ties in sampling order, replies without one last)."""
    def key(i: int):
        m = merit(rows[i], direction)
        return (m is None, -m if m is not None else 0.0, i)

    return sorted(range(len(rows)), key=key)


def mark_cell(i: int, best: int | None, worst: int | None) -> Text:
    if i == best:
        return Text("▲ best", style=BEST_STYLE)
    if i == worst:
        return Text("▼ worst", style=WORST_STYLE)
    return Text("")


class GroupView:
    """A group's completions under column titles, best for the run first, each with its score, reward
    (when it differs from the score), advantage and the judge's verdict in text mode, wrapped to the
    lines the height allows."""

    def __init__(self, rows: list[dict], judge_text: bool, direction: str = "forward"):
        self.direction = direction
        self.rows = [rows[i] for i in best_first(rows, direction)]
        self.judge_text = judge_text
        self.show_reward = any(r.get("reward", r.get("score")) != r.get("score") for r in rows)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        rows = self.rows
        if not rows:
            yield Text("no training group yet", style="dim")
            return
        height = max(1, (options.height or 2 * len(rows) + 1) - 1)  # one line of column titles
        shown = list(range(len(rows)))
        if len(rows) > height:  # keep the best ones and the worst
            shown = shown[: max(0, height - 2)] + [None, len(rows) - 1]
        per, extra = divmod(height, max(len(shown), 1))  # lines per reply; the best ones get the rest
        best, worst = best_and_worst(rows, self.direction)
        columns = [("", 7, "left"), ("score", 5, "right")] + ([("reward", 6, "right")] if self.show_reward else [])
        columns.append(("advantage", 9, "right"))
        free = max(10, options.max_width - sum(w for _, w, _ in columns) - len(columns))
        text_w, judge_w = (free * 2 // 3, free - free * 2 // 3 - 1) if self.judge_text else (free, 0)
        table = Table.grid(padding=(0, 1))
        table.show_header, table.header_style = True, "bold"
        for title, width, justify in columns:
            table.add_column(title, width=width, justify=justify, no_wrap=True)
        table.add_column("text", width=text_w)
        if self.judge_text:
            table.add_column("judge verdict", width=judge_w)
        for k, i in enumerate(shown):
            if i is None:
                table.add_row(*[""] * len(columns), Text(f"… {len(rows) - len(shown) + 1} more", style="dim"))
                continue
            r = rows[i]
            lines = max(1, per + (k < extra))
            style = BEST_STYLE if i == best else WORST_STYLE if i == worst else ""
            cells = [mark_cell(i, best, worst), Text(num(r.get("score")), style=style)]
            if self.show_reward:
                cells.append(Text(num(r.get("reward")), style=style))
            cells += [Text(num(r.get("advantage"), "+.2f")),
                      clip_lines(one_line(r.get("completion", "")), console, text_w, lines)]
            if self.judge_text:
                cells.append(clip_lines(one_line(r.get("judge_text") or "-"), console, judge_w, lines, "italic"))
            table.add_row(*cells)
        yield table
