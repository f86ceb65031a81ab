"""Training progress as plain text: one compact line per step (and per evaluation).

What `hmx-mlx train` prints when its output is not a terminal or with ``--plain``
(the live dashboard is ``ui.dashboard``), and `hmx-mlx watch --plain`.
``format_step`` and ``format_summary`` are pure (metrics in, text out).
This module does not import MLX: `watch` uses it.
"""

from __future__ import annotations

import math
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import TrainConfig


def _f(value, fmt: str = ".2f") -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, fmt)


def format_step(m: dict, total: int) -> str:
    if m.get("step") == 0:
        return (f"step 0/{total}  base held-out score {_f(m.get('eval_score'))} ± {_f(m.get('eval_score_se'))} "
                f"(n={m.get('eval_n')}, {_f(m.get('eval_seconds'), '.0f')}s)")
    line = (
        f"step {m['step']}/{total}  reward {_f(m['reward_mean'])} ± {_f(m['reward_std'])}  "
        f"loss {_f(m['loss'], '.4f')}  zero-std {_f(m['frac_reward_zero_std'])}  len {_f(m['completion_len'], '.0f')}  "
        f"trunc {_f(m['truncated_ratio'])}  rep {_f(m.get('degenerate_ratio'))}  nan {m['judge_nan']}  "
        f"[{_f(m['rollout_s'], '.0f')}s roll {_f(m['rollout_tok_s'], '.0f')} tok/s | "
        f"{_f(m['judge_s'], '.0f')}s judge | {_f(m['update_s'], '.0f')}s update]"
    )
    if "eval_score" in m:
        line += (f"\n  eval: held-out score {_f(m['eval_score'])} ± {_f(m['eval_score_se'])}  "
                 f"reward {_f(m['eval_reward'])}  KL {_f(m['eval_kl'], '.4f')}  "
                 f"degenerate {_f(m.get('eval_degenerate_ratio'))}  checkpoint step_{m['step']}")
    return line


def format_summary(summary: dict) -> str:
    """The end of a run in one line: status, how the held-out score moved, the selected checkpoint."""
    base, final = summary.get("base_eval_score"), summary.get("final_eval_score")
    moved = f"held-out score {_f(base)} -> {_f(final)}" if base is not None and final is not None else "no evaluation"
    sel = summary.get("selected_step")
    reason = f" ({summary['reason']})" if summary.get("reason") else ""
    line = (f"{summary.get('status', 'no summary')}: {moved}; selected checkpoint: "
            f"{'step_' + str(sel) if sel is not None else 'none'}{reason}")
    return line + (f"; {summary['stopped']}" if summary.get("stopped") else "")


class StepPrinter:
    """The ``on_step`` callback of ``trainer.train`` printing plain lines (a context manager,
    like the live dashboard, so the train command treats both alike)."""

    def __init__(self, config: TrainConfig, out=None):
        self.total = config.steps
        self.out = out or sys.stdout
        self.start = time.perf_counter()
        self._emit(f"training {config.model} ({config.direction}, seed {config.seed}) for {config.steps} steps")

    def _emit(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def __enter__(self) -> "StepPrinter":
        return self

    def __exit__(self, *exc) -> None:
        pass

    def __call__(self, metrics: dict, samples: list[dict]) -> None:
        self._emit(format_step(metrics, self.total))

    def close(self) -> None:
        self._emit(f"done in {(time.perf_counter() - self.start) / 60:.1f} min")
