"""Training progress in the terminal: one compact line per step (and per evaluation).

``format_step`` is pure (metrics in, text out) so tests check it directly.
"""

from __future__ import annotations

import math
import sys
import time

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


class StepPrinter:
    """The ``on_step`` callback of ``trainer.train``."""

    def __init__(self, config: TrainConfig, plain: bool = False, out=None):
        self.total = config.steps
        self.out = out or sys.stdout
        self.start = time.perf_counter()
        self.rich = not plain and self.out.isatty()
        if self.rich:
            from rich.console import Console

            self.console = Console(file=self.out)
        header = f"training {config.model} ({config.direction}, seed {config.seed}) for {config.steps} steps"
        self._emit(header)

    def _emit(self, text: str) -> None:
        if self.rich:
            self.console.print(text, highlight=False)
        else:
            print(text, file=self.out, flush=True)

    def __call__(self, metrics: dict, samples: list[dict]) -> None:
        self._emit(format_step(metrics, self.total))

    def close(self) -> None:
        self._emit(f"done in {(time.perf_counter() - self.start) / 60:.1f} min")
