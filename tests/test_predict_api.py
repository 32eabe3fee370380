"""``Classifier.from_checkpoint``'s arguments are checked at the edge, before any file is read:
one clear TypeError or ValueError sentence, not a traceback from the internals (issue 14)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rvl_llm.predict.classifier import Classifier


@pytest.mark.parametrize(("kwargs", "error", "words"), [
    ({"path": 123}, TypeError, "path must be a str or a path, not int"),
    ({"path": None}, TypeError, "path must be a str or a path, not NoneType"),
    ({"max_len": "64"}, TypeError, "max_len must be a whole number (int), not str '64'"),
    ({"max_len": 64.7}, TypeError, "max_len must be a whole number (int), not float 64.7"),
    ({"batch_size": 2.0}, TypeError, "batch_size must be a whole number"),
    ({"class_chunk": True}, TypeError, "class_chunk must be a whole number"),
    ({"batch_size": 0}, ValueError, "batch_size 0: must be a positive whole number"),
    ({"max_len": -1}, ValueError, "max_len -1: must be a positive whole number"),
    ({"device": 0}, TypeError, "device must be a str or None, not int"),
])
def test_wrong_arguments_are_one_sentence_before_anything_is_read(
        tmp_path: Path, kwargs: dict, error: type[Exception], words: str) -> None:
    arguments = {"path": tmp_path / "no-such-checkpoint", **kwargs}
    with pytest.raises(error) as caught:
        Classifier.from_checkpoint(**arguments)
    assert words in str(caught.value) and "\n" not in str(caught.value)
