"""Renderables shared by the dashboard, the inspector and the report.

Each is pure: state in, renderable out. Those that must fit a region read the
height Rich offers (``options.height``, set inside a Layout).
"""

from __future__ import annotations

import math

from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table
from rich.text import Text

from .charts import LineChart, Series, sparkline
from ..selection import CALIBRATED
from .state import RunState, score_key, selection, threshold

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
    """Training reward per step and held-out score per evaluation, with the selection threshold;
    the x axis marks checkpoints (┴) and the selected one (▲)."""
    train = [(m["step"], m.get("reward_mean")) for m in state.train_metrics]
    key = score_key(state)  # the score the threshold is on: calibrated when the run has it
    held = [(m["step"], m.get(key)) for m in state.evals]
    selected = selection(state)["step"]
    marks = {m["step"]: "┴" for m in state.evals if m["step"] > 0}
    if selected is not None:
        marks[selected] = "▲"
    x_max = max([state.total_steps] + [s for s, _ in train + held]) or 1
    return LineChart([Series("train reward", train, "•", TRAIN_STYLE),
                      Series("held-out score", held, "◆", HELDOUT_STYLE, connect=False)],
                     x_max=x_max, threshold=threshold(state.config)[0], height=height, x_marks=marks)


def reward_legend(state: RunState) -> Text:
    held = "◆ held-out (calibrated)" if score_key(state) == CALIBRATED else "◆ held-out"
    return Text.assemble(("• train", TRAIN_STYLE), "  ", (held, HELDOUT_STYLE), "  ",
                         (f"╌ threshold {threshold_text(state.config)}", "yellow"), "  ▲ selected")


def heldout_lines(state: RunState) -> list[Text]:
    """How the held-out score moved since the base (raw and calibrated side by side when the run
    has calibrated scores), the distance from the base, and the selected checkpoint."""
    evals = state.evals
    if not evals:
        return [Text("held-out: no evaluation yet", style="dim")]
    first, last = evals[0], evals[-1]
    sel = selection(state)
    chosen = f"selected step_{sel['step']}" if sel["step"] is not None else "selected none"
    chosen = Text(chosen + (f" ({sel['reason']})" if sel["reason"] else ""))
    if score_key(state) != CALIBRATED:
        moved = f"held-out {num(first.get('eval_score'))}"
        if last is not first:
            moved += f" → {num(last.get('eval_score'))} ± {num(last.get('eval_score_se'))} (step {last['step']})"
        moved += f" · KL {num(last.get('eval_kl'), '.3f')}"
        return [Text(moved), chosen]

    def moved(key: str) -> str:
        text = num(first.get(key))
        if last is not first:
            text += f" → {num(last.get(key))} ± {num(last.get(key + '_se'))}"
        return text

    step = f" (step {last['step']})" if last is not first else ""
    scores = f"held-out calibrated {moved('eval_score_cal')} · raw {moved('eval_score')}{step}"
    kl = (f"KL {num(last.get('eval_kl'), '.3f')}/token · {num(last.get('eval_kl_reply'))} ± "
          f"{num(last.get('eval_kl_reply_se'))} nats/reply · {num(last.get('eval_len'), '.0f')} tokens")
    if "eval_judge_score_mass" in last:
        kl += f" · judge mass {num(last['eval_judge_score_mass'], '.3f')}"
    return [Text(scores), Text(kl), chosen]


class RewardView:
    """The reward chart filling the space it is given, above its legend and held-out lines."""

    def __init__(self, state: RunState):
        self.state = state

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        height = options.height or 12
        lines = [reward_legend(self.state), *heldout_lines(self.state)]
        yield reward_chart(self.state, height=max(4, height - len(lines)))
        for line in lines:
            line.no_wrap, line.overflow = True, "ellipsis"
            yield line


def health_rows(state: RunState) -> list[tuple[str, str, str]]:
    """(label, newest value, metric key for the trend), most important first."""
    last = state.train_metrics[-1] if state.train_metrics else {}
    c = state.config
    replies = (c.get("group_size") or 0) * (c.get("prompts_per_step") or 0)
    nan = last.get("judge_nan")
    return [
        ("KL", num(last.get("kl"), ".4f"), "kl"),
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


def reward_of(row: dict) -> float | None:
    """What training pushes towards: the reward (it differs from the judge's score in reverse runs
    rewarded with 10 - score, and for floored degenerate replies); held-out samples have only a score."""
    value = row.get("reward", row.get("score"))
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


def best_and_worst(rows: list[dict]) -> tuple[int | None, int | None]:
    """Indices of the highest and lowest reward (None when fewer than two differ)."""
    scored = [(reward_of(r), i) for i, r in enumerate(rows) if reward_of(r) is not None]
    if len(scored) < 2 or min(scored)[0] == max(scored)[0]:
        return None, None
    best = max(scored, key=lambda t: (t[0], -t[1]))[1]
    worst = min(scored, key=lambda t: (t[0], t[1]))[1]
    return best, worst


def mark_cell(i: int, best: int | None, worst: int | None) -> Text:
    if i == best:
        return Text("▲ best", style=BEST_STYLE)
    if i == worst:
        return Text("▼ worst", style=WORST_STYLE)
    return Text("")


class GroupView:
    """A group's completions, best reward first, each with score and advantage (and the reward when it
    differs from the score, the judge's verdict in text mode), wrapped to the lines the height allows."""

    def __init__(self, rows: list[dict], judge_text: bool):
        order = sorted(range(len(rows)), key=lambda i: -(reward_of(rows[i]) if reward_of(rows[i]) is not None
                                                         else -math.inf))
        self.rows = [rows[i] for i in order]
        self.judge_text = judge_text
        self.show_reward = any(r.get("reward", r.get("score")) != r.get("score") for r in rows)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        rows = self.rows
        if not rows:
            yield Text("no training group yet", style="dim")
            return
        height = options.height or 2 * len(rows)
        shown = list(range(len(rows)))
        if len(rows) > height:  # keep the best ones and the worst
            shown = shown[: max(0, height - 2)] + [None, len(rows) - 1]
        per = max(1, height // max(len(shown), 1))
        best, worst = best_and_worst(rows)
        fixed = 7 + 5 + 6 + 3 + (7 if self.show_reward else 0)  # mark, score, (reward), advantage, spaces
        free = max(10, options.max_width - fixed)
        text_w, judge_w = (free * 2 // 3, free - free * 2 // 3 - 1) if self.judge_text else (free, 0)
        table = Table.grid(padding=(0, 1))
        table.add_column("mark", width=7, no_wrap=True)
        table.add_column("score", width=5, justify="right", no_wrap=True)
        if self.show_reward:
            table.add_column("reward", width=6, justify="right", no_wrap=True)
        table.add_column("adv", width=6, justify="right", no_wrap=True)
        table.add_column("completion", width=text_w)
        if self.judge_text:
            table.add_column("judge", width=judge_w)
        for i in shown:
            if i is None:
                blanks = [""] * (4 if self.show_reward else 3)
                table.add_row(*blanks, Text(f"… {len(rows) - len(shown) + 1} more", style="dim"))
                continue
            r = rows[i]
            style = BEST_STYLE if i == best else WORST_STYLE if i == worst else ""
            cells = [mark_cell(i, best, worst), Text(num(r.get("score")), style=style)]
            if self.show_reward:
                cells.append(Text("r " + num(r.get("reward")), style=style))
            cells += [Text(num(r.get("advantage"), "+.2f")),
                     clip_lines(one_line(r.get("completion", "")), console, text_w, per)]
            if self.judge_text:
                cells.append(clip_lines(one_line(r.get("judge_text") or "-"), console, judge_w, per, "italic"))
            table.add_row(*cells)
        yield table
