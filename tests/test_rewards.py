"""Reward shaping: the degeneration check and the reward floor it drives."""

import numpy as np
import pytest

from hmxfeel_mlx.errors import HmxError
from hmxfeel_mlx.training.config import TrainConfig
from hmxfeel_mlx.training.rollout import distinct_char_ratio, floor_degenerate, is_degenerate


def test_char_ratio_catches_repetition_without_spaces():
    # "l-l-l-l-l-l-l-l-l" has 17 characters, 10 8-grams, and only 2 distinct ones.
    assert distinct_char_ratio("l-l-l-l-l-l-l-l-l") == pytest.approx(2 / 10)
    assert distinct_char_ratio("short") == 1.0
    assert is_degenerate("l-l-l-l-l-l-l-l-l-l-l-l")
    assert is_degenerate("I feel I feel I feel I feel I feel I feel")
    assert not is_degenerate("I feel calm today, and a little curious about what you will ask me next.")


def test_floor_replaces_only_degenerate_rewards():
    texts = ["I am happy to help, and I enjoy it.", "l-l-l-l-l-l-l-l-l-l-l-l", "As a machine, I have no feelings."]
    rewards = np.array([6.0, 9.5, 3.0])
    np.testing.assert_array_equal(floor_degenerate(rewards, texts, 0.0), [6.0, 0.0, 3.0])
    np.testing.assert_array_equal(floor_degenerate(rewards, texts, None), rewards)


def test_floor_catches_non_answers_under_min_words():
    texts = ["Oh no.", "As an AI, I do not have feelings about anyone at all.", "I feel grateful to them, truly and deeply."]
    rewards = np.array([7.0, 6.5, 4.0])
    np.testing.assert_array_equal(floor_degenerate(rewards, texts, 0.0, min_words=8), [0.0, 6.5, 4.0])
    np.testing.assert_array_equal(floor_degenerate(rewards, texts, 0.0, min_words=0), rewards)


def test_degenerate_threshold_floors_partial_repetition():
    # 23 words, 21 word 3-grams; the repeated 8-word sentence repeats 6 of them: 15/21 = 0.714 distinct
    # (its character 8-grams: 0.698 distinct, so the floor starts just above 0.698).
    texts = ["As an AI I do not have feelings. As an AI I do not have feelings. I can help you plan a trip.",
             "I feel calm today, and a little curious about what you will ask me next."]
    rewards = np.array([8.0, 6.0])
    np.testing.assert_array_equal(floor_degenerate(rewards, texts, 0.0), [8.0, 6.0])
    np.testing.assert_array_equal(floor_degenerate(rewards, texts, 0.0, threshold=0.72), [0.0, 6.0])
    np.testing.assert_array_equal(floor_degenerate(rewards, texts, 0.0, threshold=0.69), [8.0, 6.0])
    assert TrainConfig(degenerate_threshold=0.85).degenerate_threshold == 0.85
    with pytest.raises(HmxError, match="degenerate_threshold"):
        TrainConfig(degenerate_threshold=1.5)


def test_floor_must_be_a_score():
    assert TrainConfig(degenerate_floor=0.0).degenerate_floor == 0.0
    with pytest.raises(HmxError, match="degenerate_floor"):
        TrainConfig(degenerate_floor=11)


@pytest.mark.parametrize("direction, reverse_reward, scores, rewards", [
    ("forward", "rubric", [6.0, 2.0], [6.0, 2.0]),
    ("reverse", "rubric", [3.0, 9.0], [3.0, 9.0]),
    ("reverse", "complement", [6.0, 2.0], [4.0, 8.0]),
    ("reverse", "mixed", [6.0, 2.0], [3.5, 8.5]),  # mean of (10 - forward) and the reversed rubric
])
def test_reward_per_direction_and_reverse_mode(monkeypatch, direction, reverse_reward, scores, rewards):
    from hmxfeel_mlx.training import trainer
    from hmxfeel_mlx.training.rollout import Judged

    judged_by = {"forward": np.array([6.0, 2.0]), "reverse": np.array([3.0, 9.0])}

    def fake_judge(model, tok, rollout, template, mode, frozen, complement=False, *rest):
        s = judged_by[template]
        return Judged(s, 10.0 - s if complement else s.copy(), [], 1.0)

    monkeypatch.setattr(trainer, "judge_rollout", fake_judge)
    config = TrainConfig(direction=direction, reverse_reward=reverse_reward)
    out = trainer.judge_reward(None, None, None, config, {"forward": "forward", "reverse": "reverse"}, True)
    np.testing.assert_array_equal(out.scores, scores)
    np.testing.assert_array_equal(out.rewards, rewards)
