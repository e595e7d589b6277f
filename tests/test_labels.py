"""The labels shared by the data, the models and the command line: one definition each (issue 27)."""

from __future__ import annotations

import pytest

from flowvq_cli import api, labels
from flowvq_cli.data import datasets, prepare, styles
from flowvq_cli.errors import UsageError
from flowvq_cli.flow import expflow


def test_talk_is_one_label_and_one_class() -> None:
    assert labels.TALK == "talk" and labels.EMOTIONS[labels.TALK_CLASS] == labels.TALK
    assert datasets.TALK is prepare.TALK is labels.TALK
    assert expflow.TALK_CLASS == labels.TALK_CLASS


def test_check_emotion_is_one_function_with_one_error() -> None:
    assert api.check_emotion is styles.check_emotion is labels.check_emotion
    assert labels.check_emotion(" Angry ", 3) == ("angry", 3)
    assert labels.check_emotion("talk") == ("talk", None)
    for call, words in ((lambda: labels.check_emotion("bored", 2), "unknown emotion 'bored'; choose one of: angry"),
                        (lambda: labels.check_emotion("happy", 4), "intensity must be 1, 2 or 3"),
                        (lambda: styles.check_style("bored", 2), "unknown emotion"),
                        (lambda: styles.check_style("happy", 0), "intensity")):
        with pytest.raises(UsageError, match=words) as info:
            call()
        assert "\n" not in str(info.value)
    assert styles.check_style("Happy", 3) == ("happy", styles.INTENSITY_SCALE[3])
