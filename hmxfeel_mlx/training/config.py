"""The one training configuration: every default lives here, once.

Precedence: command line > config file (JSON, or YAML when PyYAML is installed) >
the model's preset in ``data/models.json`` (``"train"``) > the defaults below.
The resolved configuration is written to ``config.json`` in the run folder.
"""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any

from ..errors import HmxError
from .grpo import LOSS_TYPES
from .judge import SCORE_MODES


@dataclass
class TrainConfig:
    # --- model and data -----------------------------------------------------
    model: str = "smollm2-135m"  # alias, repo id, folder or .gguf (see `hmx-mlx models`)
    direction: str = "forward"  # forward = human-like (HMX-feel), reverse = machine-like control
    seed: int = 0  # seeds data order, sampling and LoRA init; five seeds per condition in the study
    train_questions: str | None = None  # .jsonl or one-question-per-line file; None = hmxfeel_mlx/prompts/questions_train.jsonl
    eval_questions: str | None = None  # None = hmxfeel_mlx/prompts/questions_eval.jsonl (the 10 held-out questions)
    system_prompt: str | None = None  # None = the model's own default system message

    # --- rollout --------------------------------------------------------------
    group_size: int = 8  # completions per prompt (G); GRPO needs >= 2
    prompts_per_step: int = 2  # prompts per step; a step samples prompts_per_step * group_size replies
    max_new_tokens: int = 128  # completion budget; longer replies are truncated (and counted)
    temperature: float = 1.0  # sampling temperature; the loss divides logits by it too (TRL)

    # --- self-judge -----------------------------------------------------------
    judge: str = "base"  # base = frozen base model (LoRA off), policy = the current model judges
    judge_mode: str = "text"  # text = write a verdict and parse 0-10 (the study); logprob = expected score
    judge_template: str = ""  # the forward rubric, for both directions: "", "short", "fewshot" (hmxfeel_mlx/prompts/judge_forward[_variant].txt) or a file path
    reverse_reward: str = "rubric"  # reverse runs: rubric = the reversed rubric's score; complement = 10 - forward score; mixed = mean of both
    reverse_judge_template: str | None = None  # the reversed rubric when reverse_reward needs one; None = the shipped reverse of judge_template's variant (a file judge_template must name its own)
    degenerate_floor: float | None = None  # reward given to degenerate (repetitive) replies instead of the judge's; None = off
    min_reply_words: int = 0  # with degenerate_floor set: replies with fewer words get the floor too (non-answers)
    degenerate_threshold: float = 0.5  # with degenerate_floor set: a reply is degenerate when under this share of its word 3-grams (or char 8-grams) is distinct
    calibration_set: str | None = None  # labelled replies (.jsonl) the judge's scale is fitted on; None = hmxfeel_mlx/prompts/judge_calibration.jsonl
    judge_words: int = 0  # the judge reads each reply's first N words only (a length control, see docs/training.md); 0 = the whole reply
    judge_max_tokens: int = 8  # verdict length in text mode
    judge_batch: int = 64  # rows per judge forward pass (memory)

    # --- GRPO loss (TRL names and meanings) ------------------------------------
    loss_type: str = "dapo"  # grpo | dr_grpo | dapo | bnpo (TRL's default is dapo)
    beta: float = 0.0  # k3 KL penalty weight to the LoRA-off base; 0 skips the reference pass (TRL default)
    epsilon: float = 0.2  # PPO clip (lower band)
    epsilon_high: float | None = None  # DAPO clip-higher; None = epsilon
    scale_rewards: bool = True  # divide advantages by the group std (GRPO); False = Dr. GRPO
    mask_truncated: bool = False  # drop truncated completions from the loss (DAPO overlong filtering)

    # --- LoRA and optimiser ----------------------------------------------------
    lora_rank: int = 8
    lora_scale: float = 20.0  # mlx-lm's default LoRA scale
    lora_layers: int = 16  # last N transformer blocks get LoRA (-1 = all)
    lora_keys: list[str] | None = None  # module paths inside a block; None = every linear layer
    learning_rate: float = 1e-5
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0  # global gradient-norm clip
    update_batch_size: int = 2  # sequences per forward/backward chunk (exact gradient accumulation); 2 rows: 0.89 vs 1.99 GiB peak at 8 x 128 tokens for +11% update time

    # --- schedule, evaluation, checkpoints --------------------------------------
    steps: int = 100
    eval_every: int = 10  # held-out reward, KL to base and a checkpoint every this many steps
    eval_samples: int = 4  # sampled replies per held-out question per evaluation
    eval_temperature: float = 1.0  # fixed-seed sampling (0 = greedy, one reply per question)
    select_threshold: float = 7.5  # first checkpoint whose calibrated held-out score crosses it is selected (reverse: 10 - it)
    max_kl: float = 10.0  # stop cleanly when the held-out KL to the base (per token, k3, at eval_temperature) exceeds this

    def __post_init__(self):
        check = _Checker()
        check.choice("direction", self.direction, ("forward", "reverse"))
        check.choice("judge", self.judge, ("base", "policy"))
        check.choice("judge_mode", self.judge_mode, SCORE_MODES)
        check.choice("reverse_reward", self.reverse_reward, ("rubric", "complement", "mixed"))
        check.choice("loss_type", self.loss_type, LOSS_TYPES)
        check.at_least("group_size", self.group_size, 2, "GRPO compares replies within a group", integer=True)
        for name in ("prompts_per_step", "max_new_tokens", "steps", "eval_every", "eval_samples", "lora_rank",
                     "judge_max_tokens", "judge_batch", "update_batch_size"):
            check.at_least(name, getattr(self, name), 1, integer=True)
        check.at_least("min_reply_words", self.min_reply_words, 0, integer=True)
        check.at_least("judge_words", self.judge_words, 0, integer=True)
        for name in ("beta", "epsilon", "weight_decay", "eval_temperature"):
            check.at_least(name, getattr(self, name), 0)
        check.positive("temperature", self.temperature)
        check.positive("learning_rate", self.learning_rate)
        check.positive("max_grad_norm", self.max_grad_norm)
        check.positive("max_kl", self.max_kl)
        if self.epsilon_high is not None:
            check.at_least("epsilon_high", self.epsilon_high, self.epsilon)
        if self.degenerate_floor is not None and not (check.is_number(self.degenerate_floor) and 0 <= self.degenerate_floor <= 10):
            check.fail("degenerate_floor", self.degenerate_floor, "a reward between 0 and 10, or null (off)")
        if not check.is_number(self.degenerate_threshold) or not 0 <= self.degenerate_threshold <= 1:
            check.fail("degenerate_threshold", self.degenerate_threshold, "a share between 0 and 1")
        if not check.is_number(self.select_threshold) or not 0 <= self.select_threshold <= 10:
            check.fail("select_threshold", self.select_threshold, "a score between 0 and 10")
        if not check.is_integer(self.lora_layers) or self.lora_layers == 0 or self.lora_layers < -1:
            check.fail("lora_layers", self.lora_layers, "a positive number of blocks, or -1 for all")
        for f in fields(self):  # then every field's type: a float seed or a bool flag given as 1 is a mistake
            check.of_type(f.name, getattr(self, f.name), f.type)

    @property
    def rollouts_per_step(self) -> int:
        return self.group_size * self.prompts_per_step

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: Path) -> None:
        from ..runfolder import write_json_atomic

        write_json_atomic(path, self.to_dict())


class _Checker:
    @staticmethod
    def fail(name, value, expected):
        raise HmxError(f"config value {name}={value!r} is invalid: expected {expected}. Fix it in the config file or flag.")

    def choice(self, name, value, options):
        if value not in options:
            self.fail(name, value, "one of " + ", ".join(options))

    @staticmethod
    def is_number(value) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)

    @staticmethod
    def is_integer(value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    def at_least(self, name, value, low, why="", integer=False):
        if not (self.is_integer(value) if integer else self.is_number(value)) or value < low:
            self.fail(name, value, f"{'an integer' if integer else 'a number'} >= {low}" + (f" ({why})" if why else ""))

    def of_type(self, name, value, annotation: str) -> None:
        """``value`` has the field's declared type (``annotation``, a string under postponed annotations)."""
        kinds = [k.strip() for k in str(annotation).split("|")]
        if value is None and "None" in kinds:
            return
        kind = next(k for k in kinds if k != "None")
        ok, expected = {
            "int": (self.is_integer(value), "an integer"),
            "float": (isinstance(value, (int, float)) and not isinstance(value, bool), "a number"),
            "bool": (isinstance(value, bool), "true or false"),
            "str": (isinstance(value, str), "a string"),
            "list[str]": (isinstance(value, list) and all(isinstance(v, str) for v in value), "a list of strings"),
        }[kind]
        if not ok:
            self.fail(name, value, expected + (" or null" if "None" in kinds else ""))

    def positive(self, name, value):
        if not self.is_number(value) or not value > 0:
            self.fail(name, value, "a number > 0")


def config_fields() -> dict[str, Any]:
    return {f.name: f for f in fields(TrainConfig)}


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a JSON (or YAML) config file into a dict, with clear errors."""
    path = Path(path)
    if not path.is_file():
        raise HmxError(f"config file not found: {path}. Check the path.")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise HmxError(f"{path} is YAML but PyYAML is not installed. Install it (pip install pyyaml) or use JSON.")
            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except HmxError:
        raise
    except Exception as e:  # json.JSONDecodeError, yaml.YAMLError
        raise HmxError(f"config file {path} cannot be parsed ({e}). Fix the syntax.")
    if not isinstance(data, dict):
        raise HmxError(f"config file {path} must hold a mapping of option names to values.")
    return data


def model_preset(model: str) -> dict[str, Any]:
    """Training overrides registered for a model alias (``"train"`` in data/models.json)."""
    from ..models.registry import load_aliases

    entry = load_aliases().get(str(model).lower(), {})
    return dict(entry.get("train", {}))


def resolve_config(
    file: str | Path | None = None, overrides: dict[str, Any] | None = None, base: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
) -> TrainConfig:
    """Merge defaults < model preset < file < settings < overrides.

    ``overrides`` are flags, where None means "not given" and is ignored; ``settings`` are
    values set by name (``--set key=value``), where None is a value: ``degenerate_floor=null``
    turns the preset's floor off. A null in the file is a value too. ``base`` replaces
    defaults + preset + file (used on resume: the run's own config.json).
    """
    known = config_fields()
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    settings = dict(settings or {})
    file_values = read_config_file(file) if file else {}
    for source, values in (("config file", file_values), ("--set", settings), ("option", overrides),
                           ("run config", base or {})):
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise HmxError(f"unknown {source} key(s): {', '.join(unknown)}. Known keys: {', '.join(known)}.")
    if base is not None:
        merged = {**base, **settings, **overrides}
    else:
        default_model = known["model"].default if known["model"].default is not MISSING else None
        model = overrides.get("model", settings.get("model", file_values.get("model", default_model)))
        merged = {**model_preset(model), **file_values, **settings, **overrides}
    try:
        return TrainConfig(**merged)
    except TypeError as e:
        raise HmxError(f"invalid configuration: {e}. Check the option names.")
