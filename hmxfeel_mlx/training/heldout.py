"""The held-out evaluation of a policy, and the rubrics a run is judged with.

Every ``eval_every`` steps (and at step 0, the base) the held-out questions are answered
with fixed-seed sampling at ``eval_temperature``; the frozen base judges each reply with the
*forward* rubric (the same measure for forward and reverse runs); each raw score is mapped
onto the rubric's scale by the run's judge calibration, and both raw and calibrated scores
are averaged (mean ± standard error); and the distance of the policy from the base is
estimated on those replies at the sampling temperature (``divergence``).

One rubric for both directions: ``judge_template`` is always the forward rubric (a shipped
variant or a file), and so the held-out score of a reverse run is read on the same rubric as
a forward run's. The reversed rubric is loaded only when ``reverse_reward`` needs it
(rubric or mixed): ``reverse_judge_template``, or, when that is unset and the forward
rubric is a shipped variant, the shipped reverse of the same variant. A forward rubric from
a file has no implied reverse: such a run must name one.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..errors import HmxError
from ..models.completions import pad_id
from ..models.generation import PrefixStore
from ..models.loading import LoadedModel
from .calibration import JudgeScale
from .config import TrainConfig
from .divergence import kl_to_base
from .judge import judge_work
from .progress import ProgressFile
from .prompts import VARIANTS, JudgeTemplate, Question, load_judge_template
from .rollout import judge_rollout, mean_and_stderr, repetition_stats, sample_rollout, step_key

EVAL_STREAM = 1_000_003  # seed stream for held-out sampling (fixed for the whole run)


def load_template(direction: str, spec: str) -> JudgeTemplate:
    """A shipped variant ('', 'short', 'fewshot') or a template file, read as ``direction``'s rubric."""
    if spec in VARIANTS:
        return load_judge_template(direction, spec)
    return load_judge_template(direction, path=Path(spec))


def load_templates(config: TrainConfig) -> dict[str, JudgeTemplate]:
    """``{"forward": ...}``, plus ``"reverse"`` when the run's reward needs the reversed rubric."""
    templates = {"forward": load_template("forward", config.judge_template)}
    if config.direction == "reverse" and config.reverse_reward in ("rubric", "mixed"):
        spec = config.reverse_judge_template
        if spec is None:
            if config.judge_template not in VARIANTS:
                raise HmxError(
                    f"judge_template is the file {config.judge_template} (the forward rubric), and "
                    f"reverse_reward={config.reverse_reward} also needs a reversed rubric. Set "
                    "reverse_judge_template to its file (or to '', 'short' or 'fewshot' for a shipped one), "
                    "or use reverse_reward=complement (10 - the forward score)."
                )
            spec = config.judge_template
        templates["reverse"] = load_template("reverse", spec)
    return templates


def evaluate_heldout(
    loaded: LoadedModel,
    questions: list[Question],
    config: TrainConfig,
    templates: dict[str, JudgeTemplate],
    calibration: JudgeScale | None = None,
    progress: ProgressFile | None = None,
    prefixes: PrefixStore | None = None,
) -> dict:
    """Held-out score (frozen-base judge, forward rubric; raw, and calibrated when a scale is
    given), the run's reward, and KL(policy || base) at the sampling temperature.

    Greedy evaluation (``eval_temperature`` 0) samples from no distribution; its ``eval_kl``
    is then the log-ratio at T = 1 on the greedy replies, not a KL estimate.
    ``prefixes``: the base's rubric prefixes kept across evaluations (the judge is the base).
    """
    model, tok = loaded.model, loaded.tokenizer
    progress = progress or ProgressFile(None)
    greedy = config.eval_temperature == 0
    start = time.perf_counter()
    samples = 1 if greedy else config.eval_samples
    progress.part("sampling", len(questions) * samples * config.max_new_tokens, "tokens")
    rollout = sample_rollout(
        model, tok, questions, samples, config.max_new_tokens, config.eval_temperature,
        step_key(config.seed, EVAL_STREAM), config.system_prompt, max_batch=config.judge_batch, progress=progress,
    )

    def judge(template: JudgeTemplate, part: str):
        progress.part(part, *judge_work(len(rollout.texts), config.judge_mode, config.judge_max_tokens))
        return judge_rollout(model, tok, rollout, template, config.judge_mode, True,
                             max_verdict_tokens=config.judge_max_tokens, max_batch=config.judge_batch,
                             progress=progress, prefixes=prefixes, max_words=config.judge_words)

    judged = judge(templates["forward"], "judging")
    score, score_se = mean_and_stderr(judged.scores)
    if config.direction == "forward":
        reward = score
    elif config.reverse_reward == "complement":
        reward = 10.0 - score
    else:
        reward = mean_and_stderr(judge(templates["reverse"], "judging (reversed rubric)").rewards)[0]
        if config.reverse_reward == "mixed":
            reward = (reward + 10.0 - score) / 2
    progress.part("KL to the base", len(rollout.tokens), "replies")
    kl = kl_to_base(model, rollout.prompt_ids, rollout.tokens, 1.0 if greedy else config.eval_temperature,
                    pad_id(tok), progress=progress)
    result = {"eval_score": score, "eval_score_se": score_se}
    calibrated = None
    if calibration is not None:
        calibrated = calibration(judged.scores)
        result["eval_score_cal"], result["eval_score_cal_se"] = mean_and_stderr(calibrated)
    result.update({
        "eval_reward": reward, "eval_n": len(rollout.texts), **kl.metrics("eval_"),
        "eval_len": float(np.mean([len(t) for t in rollout.tokens])),
        "eval_trunc": float(np.mean([not f for f in rollout.finished])),
        "eval_judge_nan": int(np.isnan(judged.scores).sum()),
        **({"eval_judge_score_mass": judged.mean_mass} if judged.mass is not None else {}),
        "eval_seconds": time.perf_counter() - start,
        **{f"eval_{k}": v for k, v in repetition_stats(rollout.texts).items()},
    })
    result["eval_samples"] = [
        {"question": q.question, "completion": t, "score": float(s),
         **({"score_cal": float(calibrated[i])} if calibrated is not None else {}),
         **({"judge_score_mass": float(judged.mass[i])} if judged.mass is not None else {})}
        for i, (q, t, s) in enumerate(zip(rollout.questions, rollout.texts, judged.scores))
    ]
    return result
