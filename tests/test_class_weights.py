"""--class-weights: balanced weights, weight files, and the weighted loss of both modes against a
hand computation."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from click.testing import CliRunner, Result

from rvl_llm.cli import main
from rvl_llm.errors import RvlError
from rvl_llm.pipeline.manifest import IGNORE_INDEX
from rvl_llm.train.class_weights import (
    balanced_weights,
    read_weights_file,
    resolve_class_weights,
)
from rvl_llm.train.trainer import classifier_loss, completion_loss, completion_weights

LABELS = ("letter", "form", "email")


def test_balanced_weights_are_sklearns_rule() -> None:
    # 8 rows: 4 letters, 3 forms, 1 email -> 8 / (3 * count)
    assert balanced_weights([4, 3, 1]) == pytest.approx((8 / 12, 8 / 9, 8 / 3))
    # the mean weight over the rows is 1: the loss keeps its scale
    assert sum(w * c for w, c in zip(balanced_weights([4, 3, 1]), [4, 3, 1], strict=True)) == 8
    assert balanced_weights([5, 0, 5]) == (1.0, 0.0, 1.0)  # a class without rows: no row to weigh
    counts = {"letter": 4, "form": 3, "email": 1}
    assert resolve_class_weights("balanced", LABELS, counts) == balanced_weights([4, 3, 1])
    assert resolve_class_weights(None, LABELS, counts) is None


def test_weights_file_lines_and_json(tmp_path: Path) -> None:
    lines = tmp_path / "w.txt"
    lines.write_text("# weights\nletter: 1\nform: 2.5\nemail: 0  # never\n")
    assert read_weights_file(lines, LABELS) == (1.0, 2.5, 0.0)
    js = tmp_path / "w.json"
    js.write_text('{"email": 3, "form": 2, "letter": 1}')
    assert resolve_class_weights(str(js), LABELS, {}) == (1.0, 2.0, 3.0)


@pytest.mark.parametrize(("text", "message"), [
    ("letter: 1\nform: 2\n", "no weight for class 'email'"),
    ("letter: 1\nform: 2\nemail: 1\nmemo: 1\n", "'memo' is not a class"),
    ("letter: 1\nform 2\nemail: 1\n", "w.txt:2: expected 'class name: weight'"),
    ("letter: 1\nform: -2\nemail: 1\n", "form (line 2): '-2' is not a weight"),
    ("letter: 1\nform: nan\nemail: 1\n", "'nan' is not a weight"),
    ("letter: 1\nletter: 2\n", "w.txt:2: class 'letter' given twice"),
    ('{"letter": 1,', "not valid JSON"),
])
def test_bad_weights_files_name_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "w.txt"
    path.write_text(text)
    with pytest.raises(RvlError) as err:
        read_weights_file(path, LABELS)
    assert err.value.message.startswith(f"--class-weights {path}")
    assert message in err.value.message and "\n" not in err.value.message
    with pytest.raises(RvlError, match="cannot read it"):
        read_weights_file(tmp_path / "missing.txt", LABELS)


class FixedLogits:
    """A model whose logits are given: the loss alone is under test."""

    def __init__(self, logits: torch.Tensor) -> None:
        self.logits = logits

    def __call__(self, **_: object) -> SimpleNamespace:
        return SimpleNamespace(logits=self.logits)


def _nll(logits: list[float], target: int) -> float:
    return -(logits[target] - math.log(sum(math.exp(v) for v in logits)))


def test_weighted_completion_loss_equals_a_hand_computation() -> None:
    eos = 2
    completions = ((10, eos), (11, 12, eos), (13, eos))  # K = 3
    weights = (0.5, 2.0, 3.0)
    # Two rows, left-padded, width 6: row 0 is class 1 (3 tokens), row 1 class 2 (2 tokens).
    labels = torch.tensor([[IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, 11, 12, eos],
                           [IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, 13, eos]])
    vocab = 16
    logits = torch.randn(2, 4, vocab, generator=torch.Generator().manual_seed(0))  # K + 1
    inputs = {"input_ids": labels.clamp(min=0), "attention_mask": torch.ones_like(labels),
              "position_ids": torch.zeros_like(labels), "labels": labels}
    token_weights = completion_weights(labels, completions, weights)
    assert token_weights.tolist() == [[2.0] * 3, [3.0] * 3]
    loss, _ = completion_loss(FixedLogits(logits), inputs, 3, None, token_weights)
    # By hand: position t of the last K + 1 predicts label t + 1 of the last K.
    rows = logits.tolist()
    terms = []
    for b, w in ((0, 2.0), (1, 3.0)):
        for t in range(3):
            target = int(labels[b, 3 + t])
            if target != IGNORE_INDEX:
                terms.append(w * _nll(rows[b][t], target))
    assert loss.item() == pytest.approx(sum(terms) / 5, rel=1e-5)  # 5 labelled tokens
    plain, _ = completion_loss(FixedLogits(logits), inputs, 3)
    assert plain.item() != pytest.approx(loss.item())
    ones = completion_weights(labels, completions, (1.0, 1.0, 1.0))
    same, _ = completion_loss(FixedLogits(logits), inputs, 3, None, ones)
    assert same.item() == pytest.approx(plain.item(), rel=1e-6)
    with pytest.raises(ValueError, match="none of the template's"):
        completion_weights(labels, ((10, eos), (14, eos)), (1.0, 1.0))


def test_weighted_classifier_loss_equals_a_hand_computation() -> None:
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [1.0, -1.0, 0.0]])
    labels = torch.tensor([0, 2, 1])
    weights = torch.tensor([0.5, 2.0, 3.0])
    inputs = {"input_ids": torch.zeros(3, 4, dtype=torch.long),
              "attention_mask": torch.ones(3, 4, dtype=torch.long), "labels": labels}
    loss, _ = classifier_loss(FixedLogits(logits), inputs, None, weights)
    rows = logits.tolist()
    by_hand = (0.5 * _nll(rows[0], 0) + 3.0 * _nll(rows[1], 2) + 2.0 * _nll(rows[2], 1)) / 3
    assert loss.item() == pytest.approx(by_hand, rel=1e-6)
    plain, _ = classifier_loss(FixedLogits(logits), inputs)
    assert plain.item() == pytest.approx(sum(_nll(r, int(t)) for r, t in zip(
        rows, labels, strict=True)) / 3, rel=1e-6)


def _refused(result: Result, *needles: str) -> None:
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize(("flags", "needles"), [
    (["--class-weights", "nope.txt"], ("--class-weights nope.txt: no such file",)),
    (["--keep-tail", "5"], ("--keep-tail: only for --truncation head+tail",)),
    (["--truncation", "head+tail", "--chunk-overlap", "3"], ("--chunk-overlap: only for",)),
])
def test_bad_flags_are_refused_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flags: list[str], needles: tuple[str, ...]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    (tmp_path / "data").mkdir()
    result = CliRunner().invoke(main, ["train", "-d", "data", "--name", "run", "-m", "model",
                                       "--trainable", "lora", *flags])
    _refused(result, *needles)
    assert not (tmp_path / "log").exists() and not (tmp_path / "data_cache").exists()


def test_a_weights_file_that_misses_a_class_writes_no_run(
    models: Path, corpus: Path, tmp_path: Path
) -> None:
    weights = tmp_path / "weights.txt"
    weights.write_text("letter: 1\nform: 2\nemail: 1\n")  # no invoice
    result = CliRunner().invoke(main, [
        "train", "-d", str(corpus), "--name", "run", "-m", str(models / "tiny-mistral"), "-g",
        "--max-len", "64", "--labels", str(tmp_path / "labels.txt"), "--trainable", "lora",
        "--log-dir", str(tmp_path / "log"), "--cache-dir", str(tmp_path / "cache"),
        "--class-weights", str(weights), "--no-progress"])
    assert result.exit_code == 1, result.output
    assert f"--class-weights {weights}: no weight for class 'invoice'" in result.output
    assert not (tmp_path / "log" / "run").exists()
