"""train -> eval on real run folders: final/ and a mid-run checkpoint, a restored classifier head,
and eval at the training max-len reusing training's cache entry while another max-len builds
(once) an entry of its own."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner
from conftest import CORPUS_LABELS as LABELS
from conftest import CORPUS_WORDS as WORDS
from test_train_runs import config

from rvl_llm.cli import main
from rvl_llm.train.run import run_train


def evaluate(checkpoint: Path, out: Path, *args: str) -> tuple[str, dict]:
    result = CliRunner().invoke(main, ["eval", "-c", str(checkpoint), "-o", str(out),
                                       "--no-progress", *args])
    assert result.exit_code == 0, result.output
    folder = Path(result.output.strip().splitlines()[-1])
    return result.output, json.loads((folder / "metrics.json").read_text())


def test_eval_of_a_trained_run(models: Path, corpus: Path, tmp_path: Path,
                               write_corpus: Callable[..., Path]) -> None:
    write_corpus({f"test_{i:04d}_{i % 4}_aws.json": WORDS[i % 4] + " page" for i in range(4)})
    cfg = config(tmp_path, models / "tiny-mistral", trainable="classifier", num_epochs=2,
                 save="epoch")
    run_train(cfg)
    final = cfg.run_dir / "final"
    recipe = json.loads((final / "recipe.json").read_text())
    out = tmp_path / "results"

    # The head is restored: eval of the validation split from final/ reproduces the accuracy
    # that training measured on the in-memory weights before saving them.
    _, metrics = evaluate(final, out, "--split", "validation")
    assert metrics["accuracy"] == recipe["validation_accuracy"]
    assert metrics["n"] == 4 and len(metrics["per_class"]) == len(LABELS)

    # At the training max-len the test split joins training's cache entry.
    log, metrics = evaluate(final, out)
    assert metrics["cache_key"] == recipe["cache_key"] and "built now" in log

    # A mid-run checkpoint evaluates on its own.
    checkpoint = min(cfg.run_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    _, metrics = evaluate(checkpoint, out)
    assert metrics["cache_key"] == recipe["cache_key"] and metrics["n"] == 4

    # Another max-len: another entry, built once, then reused.
    log, shorter = evaluate(final, out, "--max-len", "32")
    assert shorter["cache_key"] != recipe["cache_key"] and "built now" in log
    assert shorter["max_len"] == 32
    log, again = evaluate(final, out, "--max-len", "32")
    assert again["cache_key"] == shorter["cache_key"] and "cache hit" in log
