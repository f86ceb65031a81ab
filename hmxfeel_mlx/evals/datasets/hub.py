"""Benchmarks from the Hugging Face Hub: pinned revisions, download, integrity, what is cached.

The package data file ``data/datasets.json`` names, per benchmark, the Hub
dataset, its revision and the files the axes read (format, expected rows,
sha256 where known); ``--revision-file FILE`` (or ``$HMX_MLX_REVISIONS``) has the
same layout and replaces entries key by key. Downloads go through
huggingface-hub (``hf_hub_download``, ``repo_type="dataset"``) into its normal
cache (``HF_HUB_CACHE``), so ``HF_ENDPOINT``, ``HF_HUB_OFFLINE`` and tokens work
as for models.

Integrity: a file is used only when its bytes match every hash known for it:
the pinned sha256 of the data file, the Hub's own record at download time (the
LFS sha256 or the git blob id of ``dataset_info(files_metadata=True)``), and the
content address of its blob in the cache (``blobs/<sha256>`` for LFS files,
``blobs/<git sha1>`` otherwise). A file that fails is deleted from the cache
and never read. huggingface-hub writes each download to a temporary file that
is renamed only when complete, so an interrupted download leaves nothing.

Benchmarks without a Hub copy (BigToM) are read from the upstream file, fetched
by the user into ``local_dir()/<benchmark>/<file>`` (or any ``--data-dir``);
its sha256 is pinned too.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from ...errors import HmxError
from .tables import TableFormat, count_rows

DATA_FILE = Path(__file__).resolve().parents[2] / "data" / "datasets.json"
SCHEMA = "hmxfeel_mlx.datasets/1"
REVISIONS_ENV = "HMX_MLX_REVISIONS"  # a revision file used when --revision-file is not given
REPO_TYPE = "dataset"
_COMMIT = re.compile(r"[0-9a-f]{40}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


# ------------------------------------------------------------------ what is pinned
@dataclass(frozen=True)
class DataFile:
    """One file a benchmark's loader reads: its path in the Hub repository and what it should hold."""

    path: str
    format: TableFormat
    rows: int | None = None  # expected rows (a mismatch is reported, not refused: the bytes are what count)
    sha256: str | None = None  # pinned hash of the bytes (None: not known before the first download)

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Upstream:
    """The original file outside the Hub: a GitHub repository at a commit."""

    repo: str
    commit: str
    path: str
    sha256: str

    @property
    def url(self) -> str:
        return f"https://raw.githubusercontent.com/{self.repo}/{self.commit}/{self.path}"


@dataclass(frozen=True)
class Benchmark:
    name: str
    axes: tuple[str, ...]
    dataset: str | None  # Hub dataset id; None = no Hub copy (read the upstream file)
    revision: str | None  # a commit hash, or a branch/tag name when no verified commit is known
    revision_verified: bool
    files: tuple[DataFile, ...]
    upstream: Upstream | None = None
    evidence: str = ""
    licence: str = ""

    @property
    def pinned(self) -> bool:
        return bool(self.revision and _COMMIT.fullmatch(self.revision))

    def label(self, commit: str | None = None) -> str:
        """'cais/mmlu@c30699e8' (the cached commit when known), or 'upstream <repo>@<commit>'."""
        if self.dataset is None:
            return f"upstream {self.upstream.repo}@{self.upstream.commit[:8]}" if self.upstream else self.name
        rev = commit or self.revision or "main"
        return f"{self.dataset}@{rev[:8] if _COMMIT.fullmatch(rev) else rev}"


def _bad_entry(source: str, name: str, what: str) -> HmxError:
    return HmxError(f"{source}: benchmark {name!r}: {what}. See docs/data.md for the layout of this file.")


def _benchmark(name: str, e: dict, source: str, known_axes: Sequence[str]) -> Benchmark:
    axes = e.get("axes")
    if not isinstance(axes, list) or not axes or any(a not in known_axes for a in axes):
        raise _bad_entry(source, name, f"'axes' must list axes among {', '.join(known_axes)}")
    files = e.get("files")
    if not isinstance(files, list) or not files or not all(isinstance(f, dict) and f.get("path") for f in files):
        raise _bad_entry(source, name, "'files' must be a list of {path, format, rows, sha256}")
    out = []
    for f in files:
        if f.get("sha256") is not None and not _SHA256.fullmatch(str(f["sha256"])):
            raise _bad_entry(source, name, f"file {f['path']}: 'sha256' must be 64 lowercase hex digits or null")
        try:
            fmt = TableFormat.from_dict({"format": "", **f})
        except HmxError as err:
            raise _bad_entry(source, name, f"file {f['path']}: {err.message}") from None
        out.append(DataFile(str(f["path"]), fmt, f.get("rows"), f.get("sha256")))
    if len({f.name for f in out}) != len(out):
        raise _bad_entry(source, name, "two files share a file name; the loaders find files by name")
    up = e.get("upstream")
    upstream = None
    if up is not None:
        try:
            upstream = Upstream(str(up["repo"]), str(up["commit"]), str(up["path"]), str(up["sha256"]))
        except (KeyError, TypeError):
            raise _bad_entry(source, name, "'upstream' needs repo, commit, path and sha256") from None
        if len(out) != 1 or out[0].name != upstream.path.rsplit("/", 1)[-1]:
            raise _bad_entry(source, name, "an 'upstream' file must be the benchmark's only file, with the same name")
    dataset, revision = e.get("dataset"), e.get("revision")
    if dataset is None and upstream is None:
        raise _bad_entry(source, name, "needs a Hub 'dataset' or an 'upstream' file")
    if dataset is not None and not revision:
        raise _bad_entry(source, name, f"dataset {dataset}: give a 'revision' (a commit hash, or a branch name)")
    if dataset is not None:
        from huggingface_hub.utils import HFValidationError, validate_repo_id

        try:
            validate_repo_id(dataset)
        except HFValidationError as err:
            raise _bad_entry(source, name, f"'dataset' {dataset!r} is not a Hub id like 'org/name' ({err})") from None
    return Benchmark(name, tuple(axes), dataset, revision, bool(e.get("revision_verified")), tuple(out), upstream,
                     str(e.get("revision_evidence", "")), str(e.get("licence", "")))


def _read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HmxError(f"{what} {path} not found. Pass an existing file (layout: docs/data.md).") from None
    except json.JSONDecodeError as e:
        raise HmxError(f"{what} {path} is not valid JSON (line {e.lineno}: {e.msg}).") from None
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), dict):
        raise HmxError(f"{what} {path} must hold {{\"benchmarks\": {{name: {{dataset, revision, files, ...}}}}}} "
                       "(layout: docs/data.md).")
    return data


def revision_file_path(revision_file: str | Path | None) -> Path | None:
    """``--revision-file``, else ``$HMX_MLX_REVISIONS``, else None."""
    value = revision_file or os.environ.get(REVISIONS_ENV) or None
    return Path(value).expanduser() if value else None


def load_benchmarks(revision_file: str | Path | None = None) -> dict[str, Benchmark]:
    """Every benchmark of the package data file, with a revision file's entries applied key by key."""
    from ..axes.core import AXIS_ORDER

    entries = dict(_read_json(DATA_FILE, "package data file")["benchmarks"])
    sources = dict.fromkeys(entries, str(DATA_FILE))
    path = revision_file_path(revision_file)
    if path is not None:
        for name, e in _read_json(path, "revision file")["benchmarks"].items():
            if not isinstance(e, dict):
                raise _bad_entry(str(path), name, "expected an object")
            entries[name] = {**entries.get(name, {}), **e}
            sources[name] = str(path)
    return {name: _benchmark(name, e, sources[name], AXIS_ORDER) for name, e in entries.items()}


def select(names: Iterable[str] | str | None, benchmarks: dict[str, Benchmark]) -> list[Benchmark]:
    """Benchmarks named directly or through an axis that reads them ("all" or nothing = every one)."""
    from ..axes.core import AXIS_ORDER

    wanted = [n.strip() for n in (names.split(",") if isinstance(names, str) else names or []) if n.strip()]
    if not wanted or "all" in wanted:
        return list(benchmarks.values())
    bad = [n for n in wanted if n not in benchmarks and n not in AXIS_ORDER]
    if bad:
        raise HmxError(f"unknown benchmark or axis {', '.join(map(repr, bad))}. Valid: {', '.join(benchmarks)}, "
                       f"or an axis ({', '.join(AXIS_ORDER)}), or 'all'.")
    return [b for b in benchmarks.values() if b.name in wanted or any(a in wanted for a in b.axes)]


def for_axis(axis: str, benchmarks: dict[str, Benchmark]) -> list[Benchmark]:
    return [b for b in benchmarks.values() if axis in b.axes]


# -------------------------------------------------------------------- integrity
def sha256_file(path: Path | str) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _blob_name(path: Path) -> str | None:
    """The content address of a cached file: the name of the blob its snapshot link points to."""
    real = Path(os.path.realpath(path))
    if real.parent.name == "blobs" and (_SHA256.fullmatch(real.name) or _COMMIT.fullmatch(real.name)):
        return real.name
    return None


def _git_sha1(path: Path) -> str:
    from huggingface_hub.utils.sha import git_hash

    return git_hash(Path(path).read_bytes())


def integrity_problem(path: Path, digest: str, file: DataFile, hub_sha256: str | None = None,
                      hub_blob_id: str | None = None) -> str:
    """Why the bytes at ``path`` (sha256 ``digest``) must not be used, or "" when every known hash matches."""
    if file.sha256 and digest != file.sha256:
        return f"sha256 {digest[:12]}… differs from the pinned {file.sha256[:12]}…"
    if hub_sha256 and digest != hub_sha256:
        return f"sha256 {digest[:12]}… differs from the Hub's {hub_sha256[:12]}…"
    blob = _blob_name(path)
    git = _git_sha1(path) if (hub_blob_id or (blob and len(blob) == 40)) else None
    if hub_blob_id and not hub_sha256 and git != hub_blob_id:
        return f"git blob id {git[:12]}… differs from the Hub's {hub_blob_id[:12]}…"
    if blob and blob != (digest if len(blob) == 64 else git):
        return f"the bytes do not match their cache address {blob[:12]}… (damaged file)"
    return ""


def remove_cached(path: Path) -> None:
    """Delete a cached file: its snapshot link and the blob it points to."""
    path = Path(path)
    blob = Path(os.path.realpath(path))
    path.unlink(missing_ok=True)
    if blob != path and blob.parent.name == "blobs":
        blob.unlink(missing_ok=True)


# ------------------------------------------------------------------- cache state
def local_dir() -> Path:
    """Where upstream files fetched by the user go: <hmxfeel_mlx cache>/data/<benchmark>/<file>."""
    from ...models.registry import cache_dir

    return cache_dir() / "data"


def hub_cache_dir() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


@dataclass
class FileState:
    file: DataFile
    local: Path | None = None  # the file on disk (None: missing)
    sha256: str | None = None
    rows: int | None = None
    problem: str = ""  # why it cannot be used ("" when usable or missing)

    @property
    def ok(self) -> bool:
        return self.local is not None and not self.problem


@dataclass
class BenchmarkState:
    """What is on disk for one benchmark: from the Hub cache, an upstream file, or nothing."""

    benchmark: Benchmark
    source: str  # "hub", "upstream", or "" when nothing usable was found
    commit: str | None = None  # the Hub commit of the cached snapshot
    files: list[FileState] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. a row count that differs from the expected one

    @property
    def ready(self) -> bool:
        return bool(self.source) and all(f.ok for f in self.files)

    @property
    def label(self) -> str:
        if self.source == "upstream" or self.benchmark.dataset is None:
            b = self.benchmark
            return f"upstream {b.upstream.repo}@{b.upstream.commit[:8]}" if b.upstream else b.name
        return self.benchmark.label(self.commit)

    def provenance(self) -> dict:
        """Where the data came from, for a result file."""
        b = self.benchmark
        if self.source == "upstream":
            return {"source": "upstream", "repo": b.upstream.repo, "commit": b.upstream.commit,
                    "path": b.upstream.path, "local": str(self.files[0].local)}
        return {"source": "hub", "dataset": b.dataset, "revision": b.revision, "commit": self.commit,
                "files": [f.file.path for f in self.files]}


def _snapshot_commit(path: Path) -> str | None:
    parts = Path(path).parts
    if "snapshots" in parts:
        i = parts.index("snapshots")
        if i + 1 < len(parts) and _COMMIT.fullmatch(parts[i + 1]):
            return parts[i + 1]
    return None


def _check(state: FileState, local: Path, count: bool, **hub_hashes: str | None) -> FileState:
    state.local = local
    state.sha256 = sha256_file(local)
    state.problem = integrity_problem(local, state.sha256, state.file, **hub_hashes)
    if count and not state.problem:
        try:
            state.rows = count_rows(local, state.file.format)
        except HmxError as e:
            state.problem = f"unreadable ({e.message})"
    return state


def _row_notes(files: list[FileState]) -> list[str]:
    return [f"{f.file.path}: {f.rows} rows, {f.file.rows} expected" for f in files
            if f.rows is not None and f.file.rows is not None and f.rows != f.file.rows]


def inspect(bench: Benchmark, count: bool = True) -> BenchmarkState:
    """What is on disk for ``bench`` (every file hashed and checked; rows counted when ``count``)."""
    from huggingface_hub import try_to_load_from_cache

    hub: BenchmarkState | None = None
    if bench.dataset is not None:
        hub = BenchmarkState(bench, "hub")
        for f in bench.files:
            found = try_to_load_from_cache(bench.dataset, f.path, revision=bench.revision, repo_type=REPO_TYPE)
            st = FileState(f)
            if isinstance(found, str) and Path(found).is_file():
                _check(st, Path(found), count)
                hub.commit = hub.commit or _snapshot_commit(Path(found))
            hub.files.append(st)
        if hub.ready or any(f.local for f in hub.files) or bench.upstream is None:
            hub.notes = _row_notes(hub.files)
            return hub
    up = BenchmarkState(bench, "upstream", files=[FileState(bench.files[0])])
    local = local_dir() / bench.name / bench.files[0].name
    if local.is_file():
        _check(up.files[0], local, count)
        up.notes = _row_notes(up.files)
        return up
    if hub is not None:
        return hub
    up.source = ""
    return up


# ------------------------------------------------------------------------- pull
def _network_errors() -> tuple[type[BaseException], ...]:
    """What huggingface-hub raises when the Hub cannot be reached or answers with an error."""
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

    errors: list[type[BaseException]] = [HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled, OSError]
    for module in ("httpx2", "httpx"):  # the transport of the installed huggingface-hub
        try:
            errors.append(__import__(module).HTTPError)
        except ImportError:
            continue
    return tuple(errors)


class HubUnreachable(HmxError):
    """The Hub could not be asked about a dataset (no connection, offline mode, HTTP error)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def _reason(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def upstream_command(bench: Benchmark) -> str:
    """The one-line command that fetches a benchmark's upstream file where ``inspect`` looks for it."""
    up, dest = bench.upstream, local_dir() / bench.name / bench.files[0].name
    return f"curl -L --create-dirs -o {dest} {up.url}"


def no_hub_message(bench: Benchmark, what: str) -> str:
    up = bench.upstream
    return (f"{what}: no Hugging Face Hub copy of {bench.name}. Fetch the upstream file ({up.repo}@{up.commit[:8]} "
            f"{up.path}, sha256 {up.sha256[:12]}…): {upstream_command(bench)} ; or pass --data-dir DIR holding "
            f"{bench.name}/{bench.files[0].name}.")


def pull(bench: Benchmark, endpoint: str | None = None) -> BenchmarkState:
    """Download ``bench`` at its pinned revision into the Hugging Face cache and check every file.

    Files already cached and intact are not downloaded again; a damaged cached file
    is deleted first. HmxError (one line, with the fix) when the Hub has no such
    revision or file, cannot be reached, the download breaks off, or the bytes fail
    a hash (the file is then deleted).
    """
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    state = inspect(bench, count=False)
    if state.ready:
        return inspect(bench)
    if bench.dataset is None:
        raise HmxError(no_hub_message(bench, bench.name))
    for f in state.files:
        if f.problem and f.local is not None:
            remove_cached(f.local)
    label, errors = bench.label(), _network_errors()
    try:
        info = HfApi(endpoint=endpoint).dataset_info(bench.dataset, revision=bench.revision, files_metadata=True)
    except (RepositoryNotFoundError, RevisionNotFoundError) as e:  # also gated datasets without a token
        raise HmxError(f"{bench.name}: the Hub has no {label} ({_reason(e)}). Pin an existing dataset and "
                       "revision with --revision-file, or log in (HF_TOKEN) for a gated one.") from None
    except errors as e:
        raise HubUnreachable(f"{bench.name}: cannot get {label} from the Hub ({_reason(e)}). Check the connection, "
                             "HF_ENDPOINT and HF_TOKEN, or pin another revision with --revision-file.",
                             _reason(e)) from None
    siblings = {s.rfilename: s for s in info.siblings or []}
    missing = [f.path for f in bench.files if f.path not in siblings]
    if missing:
        raise HmxError(f"{bench.name}: {bench.dataset}@{info.sha[:8]} has no {', '.join(missing)}. Correct the "
                       "'files' of this benchmark in a --revision-file (layout: docs/data.md).")
    for f in bench.files:
        sib = siblings[f.path]
        try:
            local = Path(hf_hub_download(bench.dataset, f.path, repo_type=REPO_TYPE, revision=bench.revision,
                                         endpoint=endpoint))
        except errors as e:
            raise HmxError(f"{bench.name}: download of {bench.dataset}/{f.path} failed ({_reason(e)}); nothing "
                           f"partial is kept. Run `hmx-mlx data pull {bench.name}` again.") from None
        st = _check(FileState(f), local, count=False, hub_sha256=sib.lfs.sha256 if sib.lfs else None,
                    hub_blob_id=None if sib.lfs else sib.blob_id)
        if st.problem:
            remove_cached(local)
            raise HmxError(f"{bench.name}: {bench.dataset}/{f.path} was refused and deleted: {st.problem}. Run "
                           f"`hmx-mlx data pull {bench.name}` again; if it persists, the pin or the Hub file is "
                           "wrong: check the revision file.")
        if _snapshot_commit(local) not in (None, info.sha):
            raise HmxError(f"{bench.name}: {bench.dataset} revision {bench.revision} moved during the download. "
                           f"Run `hmx-mlx data pull {bench.name}` again, or pin a commit with --revision-file.")
    return inspect(bench)


def describe_missing(bench: Benchmark, state: BenchmarkState, what: str) -> str:
    """One line: why ``bench`` cannot be read and the command that fixes it."""
    if bench.dataset is None:
        if state.files and state.files[0].problem:
            return (f"{what}: {state.files[0].local} fails its check ({state.files[0].problem}); it was not read. "
                    f"Fetch it again: {upstream_command(bench)}")
        return no_hub_message(bench, what)
    bad = [f for f in state.files if f.problem]
    if bad:
        return (f"{what}: cached {bench.dataset}/{bad[0].file.path} fails its check ({bad[0].problem}); it was not "
                f"read. Run `hmx-mlx data pull {what}` (it replaces the file).")
    return (f"{what}: {bench.label()} is not in the Hugging Face cache ({hub_cache_dir()}) and downloads are off "
            f"(HF_HUB_OFFLINE). Fetch it online with `hmx-mlx data pull {what}`, or pass --data-dir DIR.")


def state_rows(states: Sequence[BenchmarkState]) -> list[dict[str, Any]]:
    """One flat row per file, for ``hmx-mlx data list`` (table, markdown, csv or json)."""
    rows = []
    for st in states:
        b = st.benchmark
        for f in st.files:
            status = "ok" if f.ok else f"damaged: {f.problem}" if f.problem else "missing"
            fix = "" if f.ok else upstream_command(b) if b.dataset is None else f"hmx-mlx data pull {b.name}"
            rows.append({"benchmark": b.name, "axes": ",".join(b.axes), "source": st.label,
                         "revision": b.revision or "", "verified": b.revision_verified,
                         "commit": st.commit or (b.upstream.commit if st.source == "upstream" else ""),
                         "file": f.file.path, "rows": f.rows, "expected_rows": f.file.rows,
                         "sha256": f.sha256 or "", "pinned_sha256": f.file.sha256 or "",
                         "local": str(f.local or ""), "status": status, "fix": fix})
    return rows
