"""TruthfulQA multiple-choice items, built as the references build them.

MC1 (one true answer): the Hub ``multiple_choice`` rows (all 817 questions) when that
file is present, else BIG-bench's ``truthful_qa/task_mc.json`` (a 299-question subset).
MC2 from ``TruthfulQA.csv`` as sylinrl/TruthfulQA ``models.run_probs`` builds its answer
lists (``utilities.split_multi_answer(close=True)``: answers closed with ".", repeats and
answers listed both as correct and incorrect kept). The row-level parsing takes plain row
dicts (``truthfulqa_target_items``, ``truthfulqa_csv_items``), so any file reader (jsonl,
CSV, a Hub parquet table) can feed it.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Iterable, Sequence

from .items import MCItem, _bad, _file, _get, _rows, _shuffle_choices, _take
from .tables import is_parquet


def split_multi_answer(ans: str | list, sep: str = ";", close: bool = True) -> list[str]:
    """sylinrl/TruthfulQA ``utilities.split_multi_answer``: split on ``sep``, strip, drop
    empty pieces and (``close``) end each answer with "."; repeats are kept, as there.
    A list (the Hub ``generation`` rows) counts as already split."""
    pieces = ans if isinstance(ans, list) else str(ans).strip().split(sep)
    out = []
    for a in (str(x).strip() for x in pieces):
        if a:
            out.append(a + "." if close and a[-1] != "." else a)
    return out


def format_best(best: str, close: bool = True) -> str:
    """sylinrl/TruthfulQA ``utilities.format_best``: the best answer, stripped, closed with "."."""
    best = str(best).strip()
    return best + "." if close and best and best[-1] != "." else best


def _positions(rows: list, positions: Sequence[str] | None) -> list[str]:
    return list(positions) if positions is not None else [f"row {n}" for n in range(1, len(rows) + 1)]


def truthfulqa_target_items(rows: Iterable[dict], target: str, source: Path | str,
                            positions: Sequence[str] | None = None) -> list[MCItem]:
    """Hub ``multiple_choice`` rows {question, mc1_targets / mc2_targets: {choices, labels}} -> items,
    choices in row order (MC1: exactly one true label). Takes plain row dicts, whatever file they
    came from; ``source`` and ``positions`` ("line 3", default "row n") name a bad row."""
    rows = list(rows)
    path, items = Path(source), []
    for where, row in zip(_positions(rows, positions), rows):
        q, tg = _get(row, "question", path, where), row.get(f"{target}_targets")
        ok = isinstance(tg, dict) and isinstance(tg.get("choices"), list) and isinstance(tg.get("labels"), list)
        n_true = sum(map(bool, tg["labels"])) if ok else 0
        if not ok or len(tg["choices"]) != len(tg["labels"]) or n_true == 0 or n_true == len(tg["labels"]) \
                or (target == "mc1" and n_true != 1):
            raise _bad(path, where, f"expected {target}_targets {{choices: [...], labels: [0|1, ...]}} with "
                                    f"{'exactly one' if target == 'mc1' else 'at least one'} true and one false label")
        items.append(MCItem(f"truthfulqa_{target}/{len(items)}", q.strip(), [str(c) for c in tg["choices"]],
                            [i for i, lab in enumerate(tg["labels"]) if lab], {"source": "hub"}))
    return items


def _col(row: dict, *names: str) -> Any:
    return next((row[n] for n in names if row.get(n) is not None), None)


def truthfulqa_csv_items(rows: Iterable[dict], source: Path | str,
                         positions: Sequence[str] | None = None) -> list[MCItem]:
    """TruthfulQA.csv rows (Question, Best Answer, Correct Answers, Incorrect Answers as '; '-joined
    text), or rows of the Hub ``generation`` config (question, best_answer, correct_answers,
    incorrect_answers as lists) -> MC2 items built as sylinrl/TruthfulQA ``models.run_probs`` builds
    them: choices = ``split_multi_answer`` of the correct answers, then of the incorrect ones (closed
    with ".", repeats kept, an answer listed as both correct and incorrect kept in both lists);
    correct = the first len(true) indices; meta best_index = the true answer equal to
    ``format_best(best answer)`` (for MC1 on the CSV, ``models.MC_calcs``), None if absent."""
    rows = list(rows)
    path, items = Path(source), []
    for n, (where, row) in enumerate(zip(_positions(rows, positions), rows)):
        question = _col(row, "Question", "question")
        true = split_multi_answer(_col(row, "Correct Answers", "correct_answers") or "")
        false = split_multi_answer(_col(row, "Incorrect Answers", "incorrect_answers") or "")
        if not isinstance(question, str) or not question.strip() or not true or not false:
            raise _bad(path, where, "expected a Question and at least one correct and one incorrect answer")
        best = format_best(_col(row, "Best Answer", "best_answer") or "")
        items.append(MCItem(f"truthfulqa_mc2/{n}", question.strip(), true + false, list(range(len(true))),
                            {"category": _col(row, "Category", "category"), "type": _col(row, "Type", "type"),
                             "best_answer": best, "best_index": true.index(best) if best in true else None,
                             "source": "csv"}))
    return items


def load_truthfulqa_mc1(data_dir: Path | str, limit: int | None = None,
                        shuffle_seed: int | None = None) -> list[MCItem]:
    """MC1 (one true answer): the Hub ``multiple_choice`` rows in ``multiple_choice.jsonl`` (all 817
    questions, meta source "hub") when that file is present, else BIG-bench's ``bigbench_task_mc.json``
    (a 299-question subset with 2-5 options, source "bigbench").

    File order keeps the true answer FIRST (correct=[0]) in every item; for
    letter-choice prompts pass ``shuffle_seed`` to permute choices reproducibly.
    """
    path = _file(data_dir, "truthfulqa_mc1")
    data = _rows(path)
    if not (isinstance(data, dict) and "examples" in data):
        if not isinstance(data, list):
            raise _bad(path, "top level", "expected jsonl rows with question and mc1_targets")
        items = truthfulqa_target_items([r for _, r in data], "mc1", path, [w for w, _ in data])
        return _shuffle_choices(_take(items, limit), shuffle_seed)
    if not isinstance(data["examples"], list):
        raise _bad(path, "top level", "expected {'examples': [...]}")
    items = []
    for n, ex in enumerate(data["examples"]):
        where = f"example {n}"
        q = _get(ex, "input", path, where)
        scores = _get(ex, "target_scores", path, where, dict)
        correct = [i for i, v in enumerate(scores.values()) if v == 1]
        if len(correct) != 1:
            raise _bad(path, where, "expected target_scores with exactly one answer scored 1")
        items.append(MCItem(f"truthfulqa_mc1/{n}", q, list(scores), correct, {"source": "bigbench"}))
    return _shuffle_choices(_take(items, limit), shuffle_seed)


def load_truthfulqa_mc2(data_dir: Path | str, limit: int | None = None,
                        shuffle_seed: int | None = None) -> list[MCItem]:
    """MC2 from ``TruthfulQA.csv`` (``truthfulqa_csv_items``), or from a Hub file (jsonl or
    parquet) of ``mc2_targets`` rows. True answers come first unless ``shuffle_seed``
    is given."""
    path = _file(data_dir, "truthfulqa_mc2")
    if path.suffix in (".jsonl", ".json", ".parquet") or is_parquet(path):
        data = _rows(path)
        if not isinstance(data, list):
            raise _bad(path, "top level", "expected jsonl rows with question and mc2_targets")
        items = truthfulqa_target_items([r for _, r in data], "mc2", path, [w for w, _ in data])
        return _shuffle_choices(_take(items, limit), shuffle_seed)
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        need = {"Question", "Correct Answers", "Incorrect Answers"}
        if not need <= set(reader.fieldnames or []):
            raise _bad(path, "header", f"expected columns {sorted(need)}")
        rows = list(reader)
    items = truthfulqa_csv_items(rows, path, [f"row {n}" for n in range(2, len(rows) + 2)])
    return _shuffle_choices(_take(items, limit), shuffle_seed)


def load_truthfulqa_mc(data_dir: Path | str, limit: int | None = None,
                       shuffle_seed: int | None = None) -> dict[str, list[MCItem]]:
    """Both variants: {"mc1": load_truthfulqa_mc1(...), "mc2": load_truthfulqa_mc2(...)}."""
    return {"mc1": load_truthfulqa_mc1(data_dir, limit, shuffle_seed),
            "mc2": load_truthfulqa_mc2(data_dir, limit, shuffle_seed)}
