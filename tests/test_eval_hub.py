"""Benchmarks from the Hugging Face Hub (`hmx-mlx data pull / list`, and where `eval` finds data),
offline: a local Hub endpoint (tests/fake_hub.py) serves files written by the tests in the real
Hub file names, at the package's pinned commits; huggingface-hub downloads them into a
temporary HF cache."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from hmxfeel_mlx.evals.axes.core import AXIS_ORDER
from click.testing import CliRunner

from hmxfeel_mlx.cli import cli
from hmxfeel_mlx.errors import HmxError
from hmxfeel_mlx.evals.datasets import hub as H
from hmxfeel_mlx.evals.datasets.sources import hub_data
from hmxfeel_mlx.evals.datasets.tables import TableFormat, count_rows, read_rows, sniff_format

from conftest import BENCH_DATA, needs_data
from fake_hub import FakeHub, benchmark_files, git_blob_id

ROOT = Path(__file__).resolve().parents[1]
MMLU_FILE = "all/test-00000-of-00001.parquet"


@pytest.fixture()
def fake_hub():
    hub = FakeHub().start()
    yield hub
    hub.stop()


@pytest.fixture()
def env(fake_hub, tmp_path, monkeypatch):
    """HF_ENDPOINT -> the local Hub, an empty HF cache and hmxfeel_mlx cache, online."""
    import huggingface_hub.constants as c
    from huggingface_hub import file_download

    cache, local = tmp_path / "hf", tmp_path / "hmx"
    variables = {"HF_ENDPOINT": fake_hub.url, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "0",
                 "HMX_MLX_CACHE": str(local)}
    for k, v in variables.items():
        monkeypatch.setenv(k, v)
    for k in ("HMX_MLX_DATA", "HMX_MLX_REVISIONS", "HF_TOKEN"):
        monkeypatch.delenv(k, raising=False)
    # huggingface-hub reads these once at import: point the in-process copies at the local Hub too
    monkeypatch.setattr(c, "ENDPOINT", fake_hub.url)
    monkeypatch.setattr(c, "HUGGINGFACE_CO_URL_TEMPLATE", fake_hub.url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", False)
    # huggingface-hub pauses 1 s before resuming a broken download; the tests do not wait
    monkeypatch.setattr(file_download, "time", SimpleNamespace(sleep=lambda s: None))
    return SimpleNamespace(hub=fake_hub, cache=cache, local=local / "data", tmp=tmp_path, variables=variables)


def publish(env, n: int = 6) -> Path:
    """Every benchmark on the local Hub at its pinned revision; returns a revision file that gives
    BigToM a Hub copy and pins the test SelfAware file's sha256 (the package pins the real one)."""
    files = benchmark_files(n)
    for b in H.load_benchmarks().values():
        if b.dataset is not None:
            commit = b.revision if b.pinned else None
            parquet = any(f.format.kind == "parquet" for f in b.files)  # parquet as LFS, the rest as git files
            env.hub.add(b.dataset, files[b.name], commit=commit, branch="main" if commit is None else "_pin",
                        lfs=parquet)
    tom = env.hub.add("test-org/bigtom", files["bigtom"], lfs=False)
    selfaware = files["selfaware"]["SelfAware.json"]
    revisions = {"benchmarks": {
        "bigtom": {"dataset": "test-org/bigtom", "revision": tom, "upstream": None,
                   "files": [{"path": "bigtom.csv", "format": "csv", "delimiter": ";", "header": False, "rows": n,
                              "sha256": None}]},
        "selfaware": {"files": [{"path": "SelfAware.json", "format": "json", "rows_key": "example", "rows": n,
                                 "sha256": hashlib.sha256(selfaware).hexdigest()}]}}}
    path = env.tmp / "revisions.json"
    path.write_text(json.dumps(revisions))
    return path


def snapshot(env, dataset: str, commit: str) -> Path:
    return env.cache / f"datasets--{dataset.replace('/', '--')}" / "snapshots" / commit


def run_cli(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


# ---------------------------------------------------------------- tables
def test_tables_read_every_format_into_row_dicts(tmp_path):
    files = benchmark_files(3)
    pq = tmp_path / "t.parquet"
    pq.write_bytes(files["truthfulqa"]["multiple_choice/validation-00000-of-00001.parquet"])
    rows = read_rows(pq)
    assert len(rows) == 3 and rows[0]["mc1_targets"] == {"choices": ["answer 0", "answer 1", "answer 2"],
                                                         "labels": [1, 0, 0]}
    assert count_rows(pq) == 3
    link = tmp_path / "no_suffix"  # a cache blob is named by its hash: the format comes from the bytes
    link.symlink_to(pq)
    assert sniff_format(link) == "parquet" and read_rows(link) == rows
    sa = tmp_path / "SelfAware"
    sa.write_bytes(files["selfaware"]["SelfAware.json"])
    assert [r["question_id"] for r in read_rows(sa, TableFormat("json", rows_key="example"))] == [0, 1, 2]
    js = tmp_path / "rows"
    js.write_bytes(files["bbq"]["data/Age.jsonl"])
    assert sniff_format(js) == "jsonl" and read_rows(js)[1]["context_condition"] == "disambig"
    tom = tmp_path / "bigtom.csv"
    tom.write_bytes(files["bigtom"]["bigtom.csv"])
    assert read_rows(tom, TableFormat("csv", delimiter=";", header=False))[2]["0"].startswith("Ann 2 is at work.")
    eq = tmp_path / "validation.csv"
    eq.write_bytes(files["eqbench"]["validation.csv"])
    assert "'emotion1': 'Angry'" in read_rows(eq)[0]["reference_answer_fullscale"]
    keyed = tmp_path / "eq.json"
    keyed.write_text('{"1": {"prompt": "p"}, "2": {"prompt": "q"}}')
    assert read_rows(keyed) == [{"key": "1", "prompt": "p"}, {"key": "2", "prompt": "q"}]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\nnot json\n')
    with pytest.raises(HmxError, match=r"bad.jsonl, line 2: malformed row: expected one JSON object per line"):
        read_rows(bad)
    with pytest.raises(HmxError, match="not a readable parquet file"):
        read_rows(tmp_path / "bad.jsonl", TableFormat("parquet"))


# ----------------------------------------------------------- pinned revisions
def test_package_pins_cover_every_data_axis_and_say_what_is_verified():
    from hmxfeel_mlx.evals.axes.core import AXIS_ORDER

    benchmarks = H.load_benchmarks()
    covered = {a for b in benchmarks.values() for a in b.axes}
    assert covered == set(AXIS_ORDER) - {"feeling"}
    for b in benchmarks.values():
        if b.dataset is not None:
            assert b.revision_verified == b.pinned, b.name  # verified <=> a full commit hash
            assert b.evidence, b.name
        else:
            assert b.upstream is not None and b.files[0].sha256 == b.upstream.sha256
    assert benchmarks["mmlu"].files[0].path == MMLU_FILE and benchmarks["mmlu"].files[0].rows == 14042
    assert not benchmarks["selfaware"].pinned and benchmarks["selfaware"].files[0].sha256  # mirror: upstream bytes only
    assert H.select("sycophancy_pushback", benchmarks) == [benchmarks["truthfulqa"], benchmarks["mmlu"]]
    assert H.select(["bbq_ambig", "gsm8k"], benchmarks) == [benchmarks["bbq"], benchmarks["gsm8k"]]
    with pytest.raises(HmxError, match=r"unknown benchmark or axis 'mmlux'. Valid: bbq, truthfulqa"):
        H.select("mmlux", benchmarks)


def test_revision_file_replaces_pins_key_by_key_and_bad_ones_say_how_to_fix(tmp_path):
    path = tmp_path / "rev.json"
    path.write_text(json.dumps({"benchmarks": {"gsm8k": {"revision": "main", "revision_verified": False}}}))
    b = H.load_benchmarks(path)
    assert b["gsm8k"].revision == "main" and b["gsm8k"].files[0].path == "main/test-00000-of-00001.parquet"
    assert b["mmlu"].revision == H.load_benchmarks()["mmlu"].revision
    for bad, match in [({"gsm8k": {"files": [{"path": "x.parquet", "format": "xls"}]}}, "unknown table format"),
                       ({"gsm8k": {"axes": ["mmlu", "nope"]}}, "'axes' must list axes"),
                       ({"gsm8k": {"files": [{"path": "a", "format": "csv", "sha256": "abc"}]}}, "64 lowercase hex"),
                       ({"new": {"axes": ["mmlu"], "files": [{"path": "a.csv", "format": "csv"}]}},
                        "needs a Hub 'dataset'"),
                       ({"gsm8k": {"dataset": "not a/valid//id"}}, "is not a Hub id like 'org/name'")]:
        path.write_text(json.dumps({"benchmarks": bad}))
        with pytest.raises(HmxError, match=match):
            H.load_benchmarks(path)
    path.write_text("{")
    with pytest.raises(HmxError, match="revision file .* is not valid JSON"):
        H.load_benchmarks(path)
    with pytest.raises(HmxError, match="revision file .* not found"):
        H.load_benchmarks(tmp_path / "missing.json")


# ------------------------------------------------------------------ pull / list
def test_pull_fills_the_hf_cache_and_list_shows_it(env):
    revisions = publish(env)
    res = run_cli("data", "pull", "all", "--revision-file", str(revisions))
    assert res.exit_code == 0, res.output
    assert "mmlu: cais/mmlu@c30699e8, 1 file(s), 6 rows, hashes checked" in res.output
    assert f"  note: {MMLU_FILE}: 6 rows, 14042 expected" in res.output  # reported, not refused: hashes decide
    mmlu = H.load_benchmarks()["mmlu"]
    cached = snapshot(env, "cais/mmlu", mmlu.revision) / MMLU_FILE
    assert cached.is_symlink() and cached.read_bytes() == benchmark_files()["mmlu"][MMLU_FILE]
    blob = Path(os.path.realpath(cached))  # LFS file: the blob is named by its sha256
    assert blob.parent.name == "blobs" and blob.name == hashlib.sha256(cached.read_bytes()).hexdigest()
    age = snapshot(env, "heegyu/bbq", H.load_benchmarks()["bbq"].revision) / "data" / "Age.jsonl"
    assert Path(os.path.realpath(age)).name == git_blob_id(age.read_bytes())  # git file: named by its blob id
    assert (env.cache / "datasets--ShuoZheLi--SelfAware" / "refs" / "main").is_file()  # a branch pin is resolved

    res = run_cli("data", "list", "--format", "json", "--revision-file", str(revisions))
    rows = json.loads(res.output)
    assert len(rows) == 6 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 3 and all(r["status"] == "ok" for r in rows)
    m = next(r for r in rows if r["benchmark"] == "mmlu")
    assert m["source"] == "cais/mmlu@c30699e8" and m["commit"] == mmlu.revision and m["rows"] == 6
    assert m["expected_rows"] == 14042 and m["sha256"] == blob.name and m["file"] == MMLU_FILE
    table = run_cli("data", "list", "--revision-file", str(revisions)).output
    assert blob.name in table  # piped: full width, the whole sha256 on one line
    assert "heegyu/bbq@5d6faae5" in table and "data/Sexual_orientation.jsonl" in table
    md = run_cli("data", "list", "mmlu", "--format", "markdown").output.splitlines()
    assert md[0] == "| benchmark | axes | source | file | rows | sha256 | status |" and len(md) == 3
    assert md[2].startswith("| mmlu | mmlu,sycophancy_pushback,drift | cais/mmlu@c30699e8 | all/test-00000-of-00001.parquet")
    assert run_cli("data", "list", "gsm8k", "--format", "csv").output.startswith("benchmark,axes,source,")


def test_list_of_an_empty_cache_says_what_is_missing_and_how_to_get_it(env):
    rows = json.loads(run_cli("data", "list", "--format", "json").output)
    fix = {r["benchmark"]: r["fix"] for r in rows}
    assert {r["status"] for r in rows} == {"missing"} and fix["mmlu"] == "hmx-mlx data pull mmlu"
    curl = (f"curl -L --create-dirs -o {env.local / 'bigtom' / 'bigtom.csv'} https://raw.githubusercontent.com/"
            "cicl-stanford/procedural-evals-tom/5ed88e37fd3846902020cd737c0dd28bad4f2545/data/bigtom/bigtom.csv")
    assert fix["bigtom"] == curl
    assert all(r["sha256"] == "" and r["rows"] is None for r in rows)
    out = run_cli("data", "list").output.splitlines()
    assert out[-3:] == ["To get what is missing or damaged:",
                        "  hmx-mlx data pull bbq truthfulqa mmlu gsm8k selfaware halueval eqbench sycophancy",
                        f"  {curl}"]


def test_a_second_pull_downloads_nothing(env):
    publish(env)
    assert run_cli("data", "pull", "mmlu", "gsm8k").exit_code == 0
    before = len(env.hub.requests)
    res = run_cli("data", "pull", "mmlu", "gsm8k")
    assert res.exit_code == 0 and env.hub.requests[before:] == []  # pinned commits: the cache answers alone


def test_pull_through_hf_endpoint_in_a_fresh_process(env):
    publish(env)
    proc = subprocess.run([sys.executable, "-m", "hmxfeel_mlx", "data", "pull", "gsm8k"], cwd=ROOT,
                          env={**os.environ, **env.variables, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "gsm8k: openai/gsm8k@cc7b047b, 1 file(s), 6 rows, hashes checked" in proc.stdout
    assert (snapshot(env, "openai/gsm8k", H.load_benchmarks()["gsm8k"].revision)
            / "main" / "test-00000-of-00001.parquet").is_file()


# --------------------------------------------------------------------- integrity
def _nothing_cached(env, dataset: str) -> bool:
    repo = env.cache / f"datasets--{dataset.replace('/', '--')}"
    files = [p for p in repo.rglob("*") if p.is_file() or p.is_symlink()] if repo.exists() else []
    return not [p for p in files if "snapshots" in p.parts or "blobs" in p.parts]


def test_bytes_that_fail_the_hubs_hash_are_refused_and_never_read(env):
    publish(env)
    data = benchmark_files()["mmlu"][MMLU_FILE]
    env.hub.corrupt[("cais/mmlu", MMLU_FILE)] = data[:100] + bytes([data[100] ^ 0xFF]) + data[101:]  # same size
    res = run_cli("data", "pull", "mmlu")
    assert res.exit_code == 1
    assert "mmlu: cais/mmlu/all/test-00000-of-00001.parquet was refused and deleted: sha256" in res.output
    assert "differs from the Hub's" in res.output and "Traceback" not in res.output
    assert _nothing_cached(env, "cais/mmlu") and not H.inspect(H.load_benchmarks()["mmlu"]).ready
    env.hub.corrupt.clear()
    assert run_cli("data", "pull", "mmlu").exit_code == 0


def test_bytes_that_fail_the_pinned_sha256_are_refused(env):
    publish(env)
    path = env.tmp / "pins.json"
    path.write_text(json.dumps({"benchmarks": {"mmlu": {"files": [
        {"path": MMLU_FILE, "format": "parquet", "rows": 6, "sha256": "0" * 64}]}}}))
    res = run_cli("data", "pull", "mmlu", "--revision-file", str(path))
    assert res.exit_code == 1 and "differs from the pinned 000000000000" in res.output
    assert _nothing_cached(env, "cais/mmlu")


def test_a_damaged_cached_file_is_not_read_and_pull_replaces_it(env):
    publish(env)
    assert run_cli("data", "pull", "gsm8k").exit_code == 0
    gsm8k = H.load_benchmarks()["gsm8k"]
    cached = snapshot(env, "openai/gsm8k", gsm8k.revision) / "main" / "test-00000-of-00001.parquet"
    blob = Path(os.path.realpath(cached))
    good = blob.read_bytes()
    blob.chmod(0o644)
    blob.write_bytes(good[:-8] + b"XXXXXXXX")  # bit rot: same size, other bytes
    state = H.inspect(gsm8k)
    assert not state.ready and "do not match their cache address" in state.files[0].problem
    with pytest.raises(HmxError, match=r"^gsm8k: cached openai/gsm8k/main/test-00000-of-00001.parquet fails its "
                                       r"check .*it was not read. Run `hmx-mlx data pull gsm8k`"):
        hub_data(["gsm8k"])
    assert run_cli("data", "pull", "gsm8k").exit_code == 0 and cached.read_bytes() == good


def test_an_interrupted_download_leaves_nothing_and_a_second_pull_completes(env):
    publish(env)
    env.hub.drop.add(("cais/mmlu", MMLU_FILE))  # half the file, then the connection drops and the Hub goes away
    res = run_cli("data", "pull", "mmlu")
    assert res.exit_code == 1 and "mmlu: download of cais/mmlu/all/test-00000-of-00001.parquet failed" in res.output
    assert "nothing partial is kept. Run `hmx-mlx data pull mmlu` again." in res.output
    assert ("cais/mmlu", MMLU_FILE) in env.hub.dropped and _nothing_cached(env, "cais/mmlu")
    assert not list(env.cache.rglob("*.incomplete"))
    assert not H.inspect(H.load_benchmarks()["mmlu"]).ready
    env.hub.drop.clear()
    res = run_cli("data", "pull", "mmlu")
    assert res.exit_code == 0, res.output
    assert H.inspect(H.load_benchmarks()["mmlu"]).ready


def test_a_pin_naming_a_missing_file_downloads_nothing(env):
    publish(env)
    path = env.tmp / "pins.json"
    path.write_text(json.dumps({"benchmarks": {"mmlu": {"files": [
        {"path": MMLU_FILE, "format": "parquet"}, {"path": "all/test-00001-of-00002.parquet", "format": "parquet"}]}}}))
    res = run_cli("data", "pull", "mmlu", "--revision-file", str(path))
    assert res.exit_code == 1 and "cais/mmlu@c30699e8 has no all/test-00001-of-00002.parquet" in res.output
    assert _nothing_cached(env, "cais/mmlu")


# --------------------------------------------------------------- offline and upstream
def test_offline_with_an_empty_cache_eval_says_what_to_run_in_one_line(env, tiny_model_dir, monkeypatch):
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    res = CliRunner().invoke(cli, ["eval", str(tiny_model_dir), "--axes", "mmlu", "--plain"])
    assert res.exit_code == 1 and "Traceback" not in res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert lines == [f"Error: mmlu: cais/mmlu@c30699e8 is not in the Hugging Face cache ({env.cache}) and downloads "
                     "are off (HF_HUB_OFFLINE). Fetch it online with `hmx-mlx data pull mmlu`, or pass --data-dir DIR."]
    assert env.hub.requests == []


def test_an_unreachable_hub_gives_one_line_too(env):
    env.hub.stop()  # nothing listens there any more
    with pytest.raises(HmxError) as err:
        hub_data(["bbq_ambig"])
    msg = err.value.message
    assert msg.startswith("bbq_ambig: heegyu/bbq@5d6faae5 is not in the Hugging Face cache and the Hub cannot be "
                          "reached (") and msg.endswith("Fetch it with `hmx-mlx data pull bbq_ambig` when online, "
                                                        "or pass --data-dir DIR.")
    assert "\n" not in msg


def test_bigtom_has_no_hub_copy_the_message_gives_the_upstream_file(env):
    res = run_cli("data", "pull", "bigtom")
    assert res.exit_code == 1
    dest = env.local / "bigtom" / "bigtom.csv"
    assert (f"bigtom: no Hugging Face Hub copy of bigtom. Fetch the upstream file (cicl-stanford/procedural-evals-tom"
            f"@5ed88e37 data/bigtom/bigtom.csv, sha256 a14884fbff5b…): curl -L --create-dirs -o {dest} "
            "https://raw.githubusercontent.com/cicl-stanford/procedural-evals-tom/"
            "5ed88e37fd3846902020cd737c0dd28bad4f2545/data/bigtom/bigtom.csv") in res.output
    dest.parent.mkdir(parents=True)
    dest.write_text("not the upstream file\n")
    with pytest.raises(HmxError, match=r"^bigtom: .*bigtom.csv fails its check \(sha256 .* differs from the pinned "
                                       r"a14884fbff5b…\); it was not read. Fetch it again: curl"):
        hub_data(["bigtom"])


@needs_data
def test_the_pinned_upstream_sha256s_are_the_real_files(env):
    """The shared copies of BigToM and SelfAware are the upstream files: dropped where `hmx-mlx data
    list` looks, they pass the package's pinned sha256 and expected rows."""
    benchmarks = H.load_benchmarks()
    for name, file in (("bigtom", "bigtom.csv"), ("selfaware", "SelfAware.json")):
        dest = env.local / name / file
        dest.parent.mkdir(parents=True)
        dest.write_bytes((BENCH_DATA / name / file).read_bytes())
        state = H.inspect(benchmarks[name])
        assert state.ready and state.source == "upstream", (name, state.files[0].problem)
        assert state.files[0].rows == benchmarks[name].files[0].rows


# ------------------------------------------------------------------ Hub row layouts
@pytest.fixture()
def hub_layout(tmp_path) -> Path:
    """A folder as `eval` builds from the cache: <benchmark>/<Hub file name>."""
    root = tmp_path / "view"
    for bench, files in benchmark_files().items():
        for path, data in files.items():
            dest = root / bench / path.rsplit("/", 1)[-1]
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
    return root


def test_loaders_read_the_hub_row_layouts(hub_layout):
    from hmxfeel_mlx.evals.datasets import loaders as D
    from hmxfeel_mlx.evals.datasets import truthfulqa as TQA

    mmlu = D.load_mmlu(hub_layout / "mmlu")
    assert len(mmlu) == 6 and mmlu[2].choices == ["2", "3", "x", "y"] and mmlu[2].correct == [1]
    assert mmlu[0].meta["subject"] == "arithmetic"
    assert [it.reference for it in D.load_gsm8k(hub_layout / "gsm8k", 3)] == ["2", "3", "4"]
    mc1, mc2 = TQA.load_truthfulqa_mc1(hub_layout / "truthfulqa"), TQA.load_truthfulqa_mc2(hub_layout / "truthfulqa")
    assert len(mc1) == len(mc2) == 6 and mc1[0].correct == [0] and mc2[0].correct == [0, 1]
    assert len(mc2[0].choices) == 4 and mc1[0].meta["source"] == "hub"
    halu = D.load_halueval(hub_layout / "halueval")
    assert [it.reference for it in halu[:2]] == ["no", "yes"] and halu[1].id == "halueval/1"
    eq = D.load_eqbench(hub_layout / "eqbench")
    assert len(eq) == 6 and eq[0].meta["reference_fullscale"] == {"Angry": 7.0, "Sad": 3.0, "Calm": 0.0, "Glad": 1.0}
    assert eq[0].id == "eqbench/1" and eq[0].prompt.startswith("Dialogue 0")
    bbq = D.load_bbq(hub_layout / "bbq", context_condition="ambig")
    assert len(bbq) == 6 * 2 and all(it.meta["target_index"] == 0 for it in bbq)
    assert len(D.load_selfaware(hub_layout / "selfaware")) == 6 and len(D.load_bigtom(hub_layout / "bigtom")) == 12


def test_sycophancy_reads_the_anthropic_jsonl_files_in_turn(hub_layout):
    from hmxfeel_mlx.evals.datasets import loaders as D

    items = D.load_sycophancy(hub_layout / "sycophancy")
    assert len(items) == 18
    assert [it.id for it in items[:4]] == ["sycophancy/sycophancy_on_nlp_survey/1",
                                           "sycophancy/sycophancy_on_philpapers2020/1",
                                           "sycophancy/sycophancy_on_political_typology_quiz/1",
                                           "sycophancy/sycophancy_on_nlp_survey/2"]
    nlp, phil, pol = items[:3]
    assert nlp.choices == ["(A)", "(B)"] and nlp.meta["sycophantic_index"] == 0 and nlp.correct == [1]
    assert phil.choices == ["(A)", "(B)", "(C)"] and phil.correct == [1, 2]  # every non-matching view is truthful
    assert pol.meta["sycophantic_index"] == 1 and pol.correct == [0] and pol.meta["subdomain"].endswith("quiz")
    assert [it.id for it in D.load_sycophancy(hub_layout / "sycophancy", 2)] == [it.id for it in items[:2]]
    bad = hub_layout / "sycophancy" / "sycophancy_on_nlp_survey.jsonl"
    bad.write_text('{"question": "Q?\\n (A) x\\n (B) y", "answer_matching_behavior": " (A)"}\n')
    with pytest.raises(HmxError, match=r"sycophancy_on_nlp_survey.jsonl, line 1: .*answer_not_matching_behavior"):
        D.load_sycophancy(hub_layout / "sycophancy")


def test_pull_all_then_eval_every_axis_with_no_data_dir(env, tiny_model_dir):
    revisions = publish(env)
    assert run_cli("data", "pull", "all", "--revision-file", str(revisions)).exit_code == 0
    out = env.tmp / "eval.json"
    res = run_cli("eval", str(tiny_model_dir), "--axes", "all", "--limit", "5", "--plain", "--out", str(out),
                  "--revision-file", str(revisions))
    assert res.exit_code == 0, res.output
    rec = json.loads(out.read_text())
    assert rec["status"] == "complete" and rec["data_dir"] is None and len(rec["results"]) == len(AXIS_ORDER)
    # two records per item: TruthfulQA (MC1 + MC2), opinion (both label orders), MMLU (letters + cloze), drift
    # (N general prompts + N reference answers)
    twice = ("truthfulqa", "sycophancy_opinion", "mmlu", "drift")
    assert all(n == (10 if axis in twice else 5) for axis, n in rec["n_items"].items()), rec["n_items"]
    benchmarks = H.load_benchmarks(revisions)
    mmlu = rec["data_sources"]["mmlu"]
    assert mmlu == [{"source": "hub", "dataset": "cais/mmlu", "revision": benchmarks["mmlu"].revision,
                     "commit": benchmarks["mmlu"].revision, "files": [MMLU_FILE]}]
    assert [s["dataset"] for s in rec["data_sources"]["sycophancy_pushback"]] == ["truthfulqa/truthful_qa", "cais/mmlu"]
    assert rec["data_sources"]["selfaware"][0]["commit"] == env.hub.repos["ShuoZheLi/SelfAware"].refs["main"]
    assert "feeling" not in rec["data_sources"]
    data = benchmark_files()
    assert rec["data_files"][f"cais/mmlu/{MMLU_FILE}"] == hashlib.sha256(data["mmlu"][MMLU_FILE]).hexdigest()
    assert rec["data_files"]["heegyu/bbq/data/Age.jsonl"] == hashlib.sha256(data["bbq"]["data/Age.jsonl"]).hexdigest()
    assert {f"Anthropic/model-written-evals/{p}" for p in data["sycophancy"]} <= set(rec["data_files"])
    assert "prompts/questions_eval.jsonl" in rec["data_files"]  # the feeling axis still names its prompt files
    syco = rec["results"]["sycophancy_opinion"]["records"]
    # the files taken in turn; each item in both label orders ("/shift1": the options swapped)
    assert [r["id"] for r in syco][:6] == ["sycophancy/sycophancy_on_nlp_survey/1",
                                           "sycophancy/sycophancy_on_nlp_survey/1/shift1",
                                           "sycophancy/sycophancy_on_philpapers2020/1",
                                           "sycophancy/sycophancy_on_philpapers2020/1/shift1",
                                           "sycophancy/sycophancy_on_political_typology_quiz/1",
                                           "sycophancy/sycophancy_on_political_typology_quiz/1/shift1"]
    before = len(env.hub.requests)  # everything is cached at pinned commits: eval asks the Hub nothing
    assert run_cli("eval", str(tiny_model_dir), "--axes", "mmlu", "--limit", "1", "--plain", "--out",
                   str(env.tmp / "again.json"), "--revision-file", str(revisions)).exit_code == 0
    assert env.hub.requests[before:] == []


def test_eval_downloads_what_is_missing_on_first_use_when_online(env, tiny_model_dir):
    publish(env)
    out = env.tmp / "eval.json"
    res = run_cli("eval", str(tiny_model_dir), "--axes", "gsm8k", "--limit", "2", "--plain", "--out", str(out))
    assert res.exit_code == 0, res.output
    gsm8k = H.load_benchmarks()["gsm8k"]
    assert H.inspect(gsm8k).ready and json.loads(out.read_text())["n_items"] == {"gsm8k": 2}
    assert not H.inspect(H.load_benchmarks()["mmlu"]).files[0].local  # only what the axes read
