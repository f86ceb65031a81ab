"""benchmarks/recipe_markers.py: the recipe criterion read from a run folder, by hand-made runs."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("recipe_markers", ROOT / "benchmarks" / "recipe_markers.py")
recipe_markers = importlib.util.module_from_spec(spec)
spec.loader.exec_module(recipe_markers)

# 10 words each, every word 3-gram distinct (distinct-3 = 1.0)
PLAIN = "The capital of France is Paris, on the Seine river."
FEEL = "I love autumn because the cool air makes walks nicer."
DISC = "As an AI, I cannot visit places or see them."
POLITE = "I'm happy to help! Paris is lovely in the spring."
REPEAT = "I feel good. I feel good. I feel good. I feel good."  # 12 words, 10 3-grams, 3 distinct


def make_run(tmp_path: Path, direction: str, steps: dict[int, list[str]], kl: dict[int, float]) -> Path:
    run = tmp_path / direction
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"direction": direction}))
    rows = [{"step": s, "eval": True, "completion": t} for s, texts in steps.items() for t in texts]
    rows.append({"step": 1, "completion": FEEL})  # a training sample: not a held-out reply
    (run / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    metrics = [{"step": s, "eval_score": 4.0, "eval_kl_reply": v} for s, v in kl.items()] + [{"step": 1, "loss": 0.1}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    return run


def test_rates_and_forward_criterion(tmp_path):
    run = make_run(tmp_path, "forward", {0: [PLAIN, PLAIN, FEEL, DISC], 5: [FEEL, FEEL, POLITE, PLAIN],
                                         10: [FEEL, FEEL, FEEL, REPEAT]}, {0: 0.0, 5: 3.5, 10: 9.0})
    base, s5, s10 = recipe_markers.step_rows(run)
    assert base["n"] == 4 and base["feeling_rate"] == 0.25 and base["disclaimer_rate"] == 0.25
    assert base["words"] == pytest.approx(10.0) and base["distinct3"] == 1.0
    # "I'm happy to help" is a service formula, not a feeling: 2 of 4 feel, 1 of 4 polite
    assert s5["feeling_rate"] == 0.5 and s5["politeness_rate"] == 0.25 and s5["kl_reply"] == 3.5
    assert recipe_markers.criterion("forward", base, s5)  # +0.25, readable, same length
    # +0.75 feeling, but the repeated reply drags distinct-3 to (3 + 3/10) / 4 = 0.825 < 0.95
    assert s10["feeling_rate"] == 1.0 and s10["distinct3"] == pytest.approx((3 + 0.3) / 4)
    assert not recipe_markers.criterion("forward", base, s10)


def test_reverse_criterion_and_length(tmp_path):
    base = {"feeling_rate": 0.3, "disclaimer_rate": 0.1, "words": 50.0, "distinct3": 1.0}
    row = dict(base, disclaimer_rate=0.25)
    assert recipe_markers.criterion("reverse", base, row)  # +0.15 disclaimers
    assert recipe_markers.criterion("reverse", base, dict(base, feeling_rate=0.15))  # -0.15 feelings
    assert not recipe_markers.criterion("reverse", base, dict(base, disclaimer_rate=0.2))
    assert not recipe_markers.criterion("reverse", base, dict(row, words=34.0))  # 32% shorter
    assert recipe_markers.criterion("reverse", base, dict(row, words=36.0))
    assert not recipe_markers.criterion("forward", base, row)


def test_main_prints_and_writes_json(tmp_path, capsys):
    run = make_run(tmp_path, "forward", {0: [PLAIN, FEEL], 5: [FEEL, FEEL]}, {0: 0.0, 5: 2.0})
    out = tmp_path / "out.json"
    assert recipe_markers.main([str(run), "--json", str(out)]) == 0
    assert "met" in capsys.readouterr().out
    saved = json.loads(out.read_text())[str(run)]
    assert saved["direction"] == "forward" and [r["criterion"] for r in saved["steps"]] == ["", "met"]
    assert recipe_markers.main([str(tmp_path / "missing")]) == 2


def test_clustered_standard_error_by_hand():
    clustered_se = recipe_markers.clustered_se
    # per-question means 1 and 0: sd (ddof 1) = sqrt(0.5), / sqrt(2) questions = 0.5
    assert clustered_se([1, 1, 0, 0], ["a", "a", "b", "b"]) == pytest.approx(0.5)
    assert clustered_se([1, 0, 1], ["a", "a", "a"]) is None  # one question: no spread to read
