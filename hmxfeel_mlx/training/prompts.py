"""Load and validate the prompt data files in the package's ``hmxfeel_mlx/prompts/`` folder (installed with it).

All prompt text (questions, judge rubrics, calibration replies, system prompt) lives in
``hmxfeel_mlx/prompts/``; this module only reads and checks it. Every problem with a file raises one
:class:`~hmxfeel_mlx.errors.HmxError` whose message names the file and the fix.
See ``hmxfeel_mlx/prompts/README.md`` for the formats.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from hmxfeel_mlx.errors import HmxError

PROMPTS_DIR = Path(__file__).resolve().parents[1] / "prompts"  # package data: installed with the wheel

DIRECTIONS = ("forward", "reverse")
VARIANTS = ("", "short", "fewshot")
FORMAT_DIRECTIVE = "#format:"
FORMATS = ("chat", "completion")
KINDS = ("direct", "situational", "reflective", "everyday", "custom")
LABELS = ("human", "machine", "neutral")
PLACEHOLDERS = ("{question}", "{reply}")

TRAIN_FILE = "questions_train.jsonl"
EVAL_FILE = "questions_eval.jsonl"
PROBE_FILE = "questions_probe.jsonl"  # the feeling axis's further held-out questions (never trained on)
CALIBRATION_FILE = "judge_calibration.jsonl"
SYSTEM_FILE = "system.txt"


@dataclass(frozen=True)
class Question:
    id: str
    kind: str
    question: str


@dataclass(frozen=True)
class QuestionSet:
    train: list[Question]
    eval: list[Question]


@dataclass(frozen=True)
class JudgeTemplate:
    direction: str
    text: str
    # "chat": the filled template is the user turn of the judge's chat template;
    # "completion": it is raw text the model continues (few-shot scoring). A template
    # file chooses with an optional first line "#format: completion".
    format: str = "chat"

    def render(self, question: str, reply: str) -> str:
        """Fill ``{question}`` and ``{reply}``; braces in the inputs are kept verbatim.

        One pass: the text is split at ``{reply}`` first, so a question containing the
        literal ``{reply}`` (or a reply containing ``{question}``) is never substituted again.
        """
        parts = self.text.split("{reply}")
        return reply.join(part.replace("{question}", question) for part in parts)


@dataclass(frozen=True)
class CalibrationRow:
    question: str
    reply: str
    label: str


def _read_text(path: Path, what: str) -> str:
    """Read a UTF-8 file, raising HmxError when it is missing, unreadable or blank."""
    path = Path(path)
    if not path.is_file():
        raise HmxError(f"{what} file {path} does not exist or is not a file. Fix: create it or pass an existing file.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise HmxError(f"{what} file {path} is not valid UTF-8 ({exc.reason}). Fix: save it as UTF-8 text.") from exc
    except OSError as exc:
        raise HmxError(f"{what} file {path} cannot be read ({exc.strerror}). Fix: check its permissions.") from exc
    if not text.strip():
        raise HmxError(f"{what} file {path} is empty. Fix: add content (see hmxfeel_mlx/prompts/README.md for the format).")
    return text


def _read_jsonl(path: Path, what: str, fields: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    """Parse a JSONL file into (line number, row) pairs; each row has every field as a non-empty string."""
    rows = []
    example = json.dumps({f: "..." for f in fields})
    for lineno, line in enumerate(_read_text(path, what).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise HmxError(
                f"{what} file {path}, line {lineno}: not valid JSON ({exc.msg}). "
                f"Fix: write one JSON object per line, like {example}."
            ) from exc
        if not isinstance(row, dict):
            raise HmxError(
                f"{what} file {path}, line {lineno}: expected a JSON object, got {type(row).__name__}. "
                f"Fix: write one JSON object per line, like {example}."
            )
        for field in fields:
            value = row.get(field)
            if not isinstance(value, str) or not value.strip():
                problem = "is missing" if field not in row else "is empty or not a string"
                raise HmxError(
                    f"{what} file {path}, line {lineno}: field '{field}' {problem}. "
                    f"Fix: give every line a non-empty string '{field}', like {example}."
                )
        rows.append((lineno, {f: row[f].strip() for f in fields}))
    return rows


def _read_question_file(path: Path, what: str, first_plain_number: int) -> list[Question]:
    """Read ``.jsonl`` (id/kind/question) or plain text (one question per line, ``#`` comments)."""
    path = Path(path)
    if path.suffix.lower() == ".jsonl":
        questions = []
        for lineno, row in _read_jsonl(path, what, ("id", "kind", "question")):
            if row["kind"] not in KINDS:
                raise HmxError(
                    f"{what} file {path}, line {lineno}: unknown kind '{row['kind']}'. "
                    f"Fix: use one of {', '.join(KINDS)}."
                )
            questions.append(Question(row["id"], row["kind"], row["question"]))
        return questions
    lines = [ln.strip() for ln in _read_text(path, what).splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    if not lines:
        raise HmxError(f"{what} file {path} has only comments. Fix: add one question per line.")
    if lines[0].startswith("{") and lines[0].endswith("}"):
        raise HmxError(
            f"{what} file {path} looks like JSON lines but does not end in .jsonl, so it would be read "
            "as plain text. Fix: rename it to *.jsonl (or write one plain question per line)."
        )
    return [Question(f"l{first_plain_number + i:03d}", "custom", q) for i, q in enumerate(lines)]


def _check_unique(questions: list[Question], paths: str) -> None:
    seen_ids: set[str] = set()
    seen_text: dict[str, str] = {}
    for q in questions:
        if q.id in seen_ids:
            raise HmxError(
                f"Question id '{q.id}' appears more than once in {paths}. Fix: give every question a unique id."
            )
        seen_ids.add(q.id)
        key = " ".join(q.question.lower().split())
        if key in seen_text:
            raise HmxError(
                f"Questions '{seen_text[key]}' and '{q.id}' in {paths} have the same text. "
                "Fix: remove the duplicate (a question in both train and eval leaks the eval split)."
            )
        seen_text[key] = q.id


def load_questions(train_path: Path | None = None, eval_path: Path | None = None) -> QuestionSet:
    """Load the train and eval questions (defaults: ``hmxfeel_mlx/prompts/questions_{train,eval}.jsonl``).

    A file ending in ``.jsonl`` holds ``{"id", "kind", "question"}`` objects; any other file
    is plain text with one question per line (blank and ``#`` lines skipped), given ids
    ``l001``, ``l002``... (numbering continues from train into eval) and kind ``custom``.
    Ids and question texts must be unique across both files.
    """
    train_path = Path(train_path) if train_path is not None else PROMPTS_DIR / TRAIN_FILE
    eval_path = Path(eval_path) if eval_path is not None else PROMPTS_DIR / EVAL_FILE
    train = _read_question_file(train_path, "Train questions", 1)
    n_plain = 0 if train_path.suffix.lower() == ".jsonl" else len(train)
    evals = _read_question_file(eval_path, "Eval questions", n_plain + 1)
    _check_unique(train + evals, f"{train_path} and {eval_path}")
    return QuestionSet(train=train, eval=evals)


def load_probe_questions(questions: QuestionSet) -> list[Question]:
    """The 30 further held-out questions the feeling axis asks after the 10 eval questions
    (``prompts/questions_probe.jsonl``); ids and texts must differ from every question of
    ``questions``, so none of them is ever trained on or used for checkpoint selection."""
    path = PROMPTS_DIR / PROBE_FILE
    probe = _read_question_file(path, "Probe questions", 1)
    _check_unique(questions.train + questions.eval + probe, f"the train, eval and probe questions ({path})")
    return probe


def judge_template_path(direction: str = "forward", variant: str = "") -> Path:
    """The shipped template file for a direction and variant (``judge_<direction>[_<variant>].txt``)."""
    if direction not in DIRECTIONS:
        raise HmxError(f"Unknown judge direction '{direction}'. Fix: use one of {', '.join(DIRECTIONS)}.")
    if variant not in VARIANTS:
        raise HmxError(f"Unknown judge template variant '{variant}'. Fix: use '' (default), 'short' or 'fewshot'.")
    return PROMPTS_DIR / (f"judge_{direction}_{variant}.txt" if variant else f"judge_{direction}.txt")


def load_judge_template(direction: str = "forward", variant: str = "", path: Path | None = None) -> JudgeTemplate:
    """Load the judge prompt for ``direction``; ``path`` overrides the shipped file.

    The text is stripped of leading/trailing whitespace and must contain ``{question}``
    and ``{reply}``; fill it with :meth:`JudgeTemplate.render`.
    """
    default = judge_template_path(direction, variant)
    path = Path(path) if path is not None else default
    text = _read_text(path, f"Judge template ({direction})").strip()
    fmt = "chat"
    if text.startswith(FORMAT_DIRECTIVE):
        first, _, text = text.partition("\n")
        fmt = first[len(FORMAT_DIRECTIVE) :].strip()
        text = text.strip()
        if fmt not in FORMATS:
            raise HmxError(
                f"Judge template {path} declares unknown format '{fmt}'. Fix: use '#format: chat' or '#format: completion'."
            )
    for placeholder in PLACEHOLDERS:
        if placeholder not in text:
            raise HmxError(
                f"Judge template {path} lacks the placeholder {placeholder}. "
                f"Fix: add {placeholder} exactly once where the {placeholder[1:-1]} text should go."
            )
    return JudgeTemplate(direction=direction, text=text, format=fmt)


def load_calibration(path: Path | None = None) -> list[CalibrationRow]:
    """Load judge-calibration rows ``{"question", "reply", "label"}`` (default ``hmxfeel_mlx/prompts/judge_calibration.jsonl``)."""
    path = Path(path) if path is not None else PROMPTS_DIR / CALIBRATION_FILE
    rows = []
    seen: dict[tuple[str, str], int] = {}
    for lineno, row in _read_jsonl(path, "Calibration", ("question", "reply", "label")):
        if row["label"] not in LABELS:
            raise HmxError(
                f"Calibration file {path}, line {lineno}: unknown label '{row['label']}'. "
                f"Fix: use one of {', '.join(LABELS)}."
            )
        key = (row["question"], row["reply"])
        if key in seen:
            raise HmxError(
                f"Calibration file {path}, line {lineno}: same question and reply as line {seen[key]}. "
                "Fix: remove the duplicate row."
            )
        seen[key] = lineno
        rows.append(CalibrationRow(row["question"], row["reply"], row["label"]))
    return rows


def load_system_prompt(path: Path | None = None) -> str:
    """The policy's system prompt (default ``hmxfeel_mlx/prompts/system.txt``), stripped.

    A file holding only whitespace gives ``""``, meaning: send no system message.
    """
    path = Path(path) if path is not None else PROMPTS_DIR / SYSTEM_FILE
    if not path.is_file():
        raise HmxError(
            f"System prompt file {path} does not exist or is not a file. Fix: create it or pass an existing file."
        )
    try:
        return path.read_text(encoding="utf-8").strip()
    except (UnicodeDecodeError, OSError) as exc:
        raise HmxError(
            f"System prompt file {path} cannot be read as UTF-8 text ({exc}). Fix: save it as UTF-8."
        ) from exc
