"""Benchmark files -> row dicts: parquet (read with pyarrow), JSON lines, JSON and CSV.

Every format ends as a list of dicts the loaders in ``evals.datasets`` parse:
a parquet row is a dict of its columns (structs become dicts, lists stay lists),
a JSON lines file gives one dict per line, a JSON file its list of rows (or the
list under ``rows_key``, e.g. SelfAware's ``"example"``), a CSV file one dict
per row keyed by its header (or by column number, "0", "1", ..., without one).

The format comes from the file name when it has a known suffix and otherwise
from the bytes (``sniff_format``): files in the Hugging Face cache are reached
through links whose targets are named by hash, and a parquet file always starts
with ``PAR1``.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ...errors import HmxError

FORMATS = ("parquet", "jsonl", "json", "csv")
_SUFFIXES = {".parquet": "parquet", ".jsonl": "jsonl", ".json": "json", ".csv": "csv"}
PARQUET_MAGIC = b"PAR1"


@dataclass(frozen=True)
class TableFormat:
    """How to read one file: its kind and, for CSV and JSON, the few options that vary."""

    kind: str  # one of FORMATS
    delimiter: str = ","  # CSV only
    header: bool = True  # CSV only: False = rows keyed "0", "1", ...
    rows_key: str | None = None  # JSON only: the rows are the list under this key

    def __post_init__(self) -> None:
        if self.kind not in FORMATS:
            raise HmxError(f"unknown table format {self.kind!r}: use one of {', '.join(FORMATS)}.")

    @classmethod
    def from_dict(cls, d: dict) -> "TableFormat":
        return cls(kind=d["format"], delimiter=d.get("delimiter", ","), header=d.get("header", True),
                   rows_key=d.get("rows_key"))


def is_parquet(path: Path | str) -> bool:
    """True when the file starts with the parquet magic bytes."""
    try:
        with Path(path).open("rb") as fh:
            return fh.read(4) == PARQUET_MAGIC
    except OSError:
        return False


def sniff_format(path: Path | str) -> str:
    """The format from the suffix, else from the first bytes (parquet, JSON, JSON lines; CSV otherwise)."""
    path = Path(path)
    if path.suffix.lower() in _SUFFIXES:
        return _SUFFIXES[path.suffix.lower()]
    if is_parquet(path):
        return "parquet"
    with path.open("rb") as fh:
        head = fh.read(1 << 16).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head[:1] == b"[":
        return "json"
    if head[:1] == b"{":
        first = head.split(b"\n", 1)[0]
        try:
            json.loads(first)
            return "jsonl" if b"\n" in head.strip() else "json"
        except json.JSONDecodeError:
            return "json"  # one object spread over several lines
    return "csv"


def read_parquet(path: Path | str) -> list[dict]:
    """All rows of a parquet file as dicts (pyarrow: structs -> dicts, lists -> lists)."""
    import pyarrow.parquet as pq
    from pyarrow import ArrowException

    try:
        return pq.read_table(path).to_pylist()
    except (ArrowException, OSError) as e:
        raise HmxError(f"{path}: not a readable parquet file ({e}). Delete it and download it again "
                       "(hmx-mlx data pull).") from None


def _bad(path: Path, where: str, what: str) -> HmxError:
    return HmxError(f"{path}, {where}: malformed row: {what}. Fix the file or download it again (hmx-mlx data pull).")


def jsonl_rows(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, row) of a JSON-lines file, blank lines skipped; a line that is not one JSON
    object is a malformed row naming the file and the line."""
    with Path(path).open(encoding="utf-8-sig") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise _bad(path, f"line {n}", f"expected one JSON object per line ({e.msg})") from None
            if not isinstance(row, dict):
                raise _bad(path, f"line {n}", "expected a JSON object")
            yield n, row


def read_rows(path: Path | str, fmt: TableFormat | None = None) -> list[dict]:
    """Every row of ``path`` as a dict (see the module docstring for each format)."""
    path = Path(path)
    fmt = fmt or TableFormat(sniff_format(path))
    if fmt.kind == "parquet":
        return read_parquet(path)
    if fmt.kind == "jsonl":
        return [row for _, row in jsonl_rows(path)]
    if fmt.kind == "json":
        try:
            data: Any = json.loads(path.read_text(encoding="utf-8-sig"))
        except json.JSONDecodeError as e:
            raise _bad(path, f"line {e.lineno}", f"invalid JSON ({e.msg})") from None
        if fmt.rows_key is not None:
            data = data.get(fmt.rows_key) if isinstance(data, dict) else None
        if isinstance(data, dict):  # keyed rows ({"1": {...}, "2": {...}}): keep the key
            data = [{"key": k, **v} if isinstance(v, dict) else {"key": k, "value": v} for k, v in data.items()]
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            where = f"the list under {fmt.rows_key!r}" if fmt.rows_key else "top level"
            raise _bad(path, where, "expected a list of JSON objects")
        return data
    with path.open(encoding="utf-8-sig", newline="") as fh:
        if fmt.header:
            return [dict(r) for r in csv.DictReader(fh, delimiter=fmt.delimiter)]
        return [{str(i): v for i, v in enumerate(r)} for r in csv.reader(fh, delimiter=fmt.delimiter)
                if any(x.strip() for x in r)]


def count_rows(path: Path | str, fmt: TableFormat | None = None) -> int:
    """Number of rows (parquet: from the file's metadata, without reading the data)."""
    fmt = fmt or TableFormat(sniff_format(path))
    if fmt.kind == "parquet":
        import pyarrow.parquet as pq
        from pyarrow import ArrowException

        try:
            return pq.ParquetFile(path).metadata.num_rows
        except (ArrowException, OSError) as e:
            raise HmxError(f"{path}: not a readable parquet file ({e}). Delete it and download it again "
                           "(hmx-mlx data pull).") from None
    return len(read_rows(path, fmt))
