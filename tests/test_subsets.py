"""Study subsets end to end: run_prepare with --train-size, --train-per-class and --split-file
selects what they say, keys the cache, records the selection, reads only the selected files; a
run's recipe carries the flags, and its eval takes the test split whole."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import prompt_for

from rvl_llm.errors import RvlError
from rvl_llm.evaluate.config import EvalConfig
from rvl_llm.evaluate.run import eval_data
from rvl_llm.labels import RVL_CDIP_CLASSES
from rvl_llm.pipeline.config import PrepareConfig
from rvl_llm.pipeline.manifest import Manifest
from rvl_llm.pipeline.prepare import run_prepare
from rvl_llm.pipeline.selection import select_split
from rvl_llm.recipe import Recipe, TrainSettings
from rvl_llm.train.config import TrainConfig

pytestmark = pytest.mark.usefixtures("fast_tokenizer_loads")

# Train documents per class: class 3 is short of --train-per-class 3.
TRAIN_PER_LABEL = {0: 6, 3: 2, 5: 6, 10: 4, 15: 6}
TEST_PER_LABEL = 2


@pytest.fixture
def corpus(write_corpus: Callable[..., Path]) -> Path:
    files: dict[str, Any] = {}
    index = 0
    for label, count in TRAIN_PER_LABEL.items():
        for _ in range(count):
            files[f"train_{index:04d}_{label}_aws.json"] = f"train document {index} of {label}"
            index += 1
    for split, per_label in (("validation", 1), ("test", TEST_PER_LABEL)):
        for label in TRAIN_PER_LABEL:
            for i in range(per_label):
                files[f"{split}_{label:02d}{i}_{label}_aws.json"] = f"{split} {label} {i}"
    return write_corpus(files)


@pytest.fixture
def cfg(corpus: Path, tokenizer_dirs: dict[str, Path],
        tmp_path: Path) -> Callable[..., PrepareConfig]:
    def make(**overrides: Any) -> PrepareConfig:
        settings: dict[str, Any] = {
            "data_dir": corpus, "model": str(tokenizer_dirs["tiny-mistral"]),
            "cache_dir": tmp_path / "cache", "max_len": 64, "generative": True,
            "progress": False,
        }
        return PrepareConfig(**(settings | overrides))

    return make


def train_files(corpus: Path) -> list[str]:
    return sorted(p.name for p in corpus.glob("train_*.json"))


def label_of(name: str) -> int:
    return int(name.removesuffix("_aws.json").rsplit("_", 1)[1])


def doc_ids(manifest: Manifest, split: str) -> list[str]:
    return list(manifest.dataset(split)["doc_id"])


def selection_record(manifest: Manifest, split: str) -> dict[str, Any] | None:
    """What the manifest says it selected (written by prepare, read back from disk)."""
    on_disk = json.loads((manifest.root / "manifest.json").read_text())
    return on_disk["splits"][split].get("selection")


def expected_train(corpus: Path, cfg: PrepareConfig) -> set[str]:
    names = train_files(corpus)
    chosen = select_split("train", names, [label_of(n) for n in names], cfg, RVL_CDIP_CLASSES)
    assert chosen.indexes is not None
    return {names[i].removesuffix(".json") for i in chosen.indexes}


def test_train_per_class_selects_train_only(corpus: Path,
                                            cfg: Callable[..., PrepareConfig]) -> None:
    settings = cfg(train_per_class=3)
    manifest = run_prepare(settings).manifest
    ids = doc_ids(manifest, "train")
    assert set(ids) == expected_train(corpus, settings)
    assert Counter(label_of(i + ".json") for i in ids) == {0: 3, 3: 2, 5: 3, 10: 3, 15: 3}
    assert ids == sorted(ids)  # listing order kept
    # Validation and test are whole.
    assert len(doc_ids(manifest, "test")) == TEST_PER_LABEL * len(TRAIN_PER_LABEL)
    assert len(doc_ids(manifest, "validation")) == len(TRAIN_PER_LABEL)
    assert selection_record(manifest, "test") is None
    record = selection_record(manifest, "train")
    assert record is not None
    assert sorted(k.removesuffix(".json") for k in record["keys"]) == sorted(ids)
    assert record["class_counts"] == {RVL_CDIP_CLASSES[0]: 3, RVL_CDIP_CLASSES[3]: 2,
                                      RVL_CDIP_CLASSES[5]: 3, RVL_CDIP_CLASSES[10]: 3,
                                      RVL_CDIP_CLASSES[15]: 3}
    assert record["notes"] == [f"{RVL_CDIP_CLASSES[3]}: only 2 train documents, fewer than "
                               "--train-per-class 3; all kept"]
    assert manifest.splits["train"].rows == 14


def test_train_size_is_stratified(corpus: Path, cfg: Callable[..., PrepareConfig]) -> None:
    settings = cfg(train_size=12)  # of 24: half of each class
    ids = doc_ids(run_prepare(settings).manifest, "train")
    assert set(ids) == expected_train(corpus, settings)
    assert Counter(label_of(i + ".json") for i in ids) == {0: 3, 3: 1, 5: 3, 10: 2, 15: 3}


def test_train_size_smaller_than_the_classes_is_refused(
        cfg: Callable[..., PrepareConfig]) -> None:
    with pytest.raises(RvlError, match=r"--train-size 4: smaller than the 5 classes"):
        run_prepare(cfg(train_size=4))
    assert not list((cfg().cache_dir).glob("*/train"))  # checked before anything was built


def test_split_file_reproduces_a_published_subset(corpus: Path, tmp_path: Path,
                                                  cfg: Callable[..., PrepareConfig]) -> None:
    names = train_files(corpus)
    tests = sorted(p.name for p in corpus.glob("test_*.json"))
    split_file = tmp_path / "published.txt"
    # With and without .json, in any order.
    split_file.write_text(f"train\t{names[7]}\ntrain {names[2].removesuffix('.json')}\n"
                          f"test {tests[0]}\n")
    manifest = run_prepare(cfg(split_file=(str(split_file),))).manifest
    assert doc_ids(manifest, "train") == [names[2].removesuffix(".json"),
                                          names[7].removesuffix(".json")]
    assert doc_ids(manifest, "test") == [tests[0].removesuffix(".json")]
    assert len(doc_ids(manifest, "validation")) == len(TRAIN_PER_LABEL)  # not listed: whole


def test_split_file_ids_not_found_are_named(tmp_path: Path,
                                            cfg: Callable[..., PrepareConfig]) -> None:
    split_file = tmp_path / "published.json"
    split_file.write_text(json.dumps({"train": ["train_9999_0_aws", "nope"]}))
    with pytest.raises(RvlError, match=r"published.json: 2 train ids not found in --data: "
                       r"train_9999_0_aws, nope"):
        run_prepare(cfg(split_file=(str(split_file),)))


def test_selection_keys_the_cache(tmp_path: Path, cfg: Callable[..., PrepareConfig]) -> None:
    first = run_prepare(cfg(train_per_class=2))
    again = run_prepare(cfg(train_per_class=2))
    assert again.built == () and again.root == first.root
    other_seed = run_prepare(cfg(train_per_class=2, subset_seed=7))
    assert other_seed.root != first.root and other_seed.built
    assert set(doc_ids(other_seed.manifest, "train")) != set(doc_ids(first.manifest, "train"))
    whole = run_prepare(cfg())
    assert whole.root not in (first.root, other_seed.root)
    assert first.manifest.settings != whole.manifest.settings  # the key part is in clear text

    # A split file keys by content: a copy elsewhere is a hit, an edit is a new entry.
    names = train_files(cfg().data_dir)
    split_file = tmp_path / "a" / "subset.json"
    split_file.parent.mkdir()
    split_file.write_text(json.dumps({"train": names[:3]}))
    listed = run_prepare(cfg(split_file=(str(split_file),)))
    copy = tmp_path / "b" / "renamed.json"
    copy.parent.mkdir()
    shutil.copy(split_file, copy)
    assert run_prepare(cfg(split_file=(str(copy),))).built == ()
    copy.write_text(json.dumps({"train": names[:4]}))
    assert run_prepare(cfg(split_file=(str(copy),))).root != listed.root


def test_only_selected_files_are_read(corpus: Path, cfg: Callable[..., PrepareConfig]) -> None:
    settings = cfg(train_per_class=1)
    chosen = expected_train(corpus, settings)
    unselected = next(n for n in train_files(corpus) if n.removesuffix(".json") not in chosen)
    (corpus / unselected).write_bytes(b"{not json")
    result = run_prepare(settings)  # no --skip-bad-files needed: the file is never opened
    assert not result.manifest.splits["train"].skipped_files
    assert set(doc_ids(result.manifest, "train")) == chosen
    with pytest.raises(RvlError, match=unselected):  # the whole split reads it
        run_prepare(cfg())


def test_recipe_carries_the_flags_and_eval_takes_the_test_split_whole(
        corpus: Path, tmp_path: Path, cfg: Callable[..., PrepareConfig]) -> None:
    train = TrainConfig.from_flags(data_dir=corpus, model=cfg().model, name="few-shot",
                                   cache_dir=tmp_path / "cache", generative=True, max_len=64,
                                   train_per_class=2, subset_seed=9, progress=False)
    assert (train.data.train_per_class, train.data.subset_seed) == (2, 9)
    recipe = Recipe(
        run_name="few-shot", model="tiny-mistral", model_location=train.data.model,
        data=replace(train.data, labels=RVL_CDIP_CLASSES),
        prompt=prompt_for(replace(train.data, labels=RVL_CDIP_CLASSES)), settings=TrainSettings(
            trainable="full"), pad_token="<pad>", lora_targets="all-linear", quantization=None,
        mixed_precision=None, cache_key="abc", versions={}, command="rvl-llm train")
    folder = recipe.write(tmp_path / "final").parent
    read_back = Recipe.read(folder)
    # No training ran, so the recipe's cache folder does not exist yet: named here, not the
    # default folder eval would fall back to.
    data = eval_data(EvalConfig(checkpoint=folder, cache_dir=tmp_path / "cache", progress=False),
                     read_back)
    assert (data.train_per_class, data.subset_seed, data.splits) == (2, 9, ("test",))
    test = run_prepare(data).manifest
    assert len(doc_ids(test, "test")) == TEST_PER_LABEL * len(TRAIN_PER_LABEL)
    assert selection_record(test, "test") is None


def test_recipe_split_file_is_absolute(corpus: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch,
                                       cfg: Callable[..., PrepareConfig]) -> None:
    """A run's eval may start in another folder: the recipe names the split file absolutely."""
    from rvl_llm.presets import resolve_model
    from rvl_llm.train.run import build_recipe

    (tmp_path / "subset.json").write_text(json.dumps({"train": train_files(corpus)[:5]}))
    monkeypatch.chdir(tmp_path)
    flags = vars(cfg(split_file=("subset.json",), splits=("train", "validation")))
    train = TrainConfig.from_flags(**flags, name="run", trainable="full")
    prepared = run_prepare(train.data)
    recipe = build_recipe(train, resolve_model(train.data.model), prepared, pad_token="<pad>",
                          mixed_precision=None)
    assert recipe.data.split_file == (str(tmp_path / "subset.json"),)


# ------------------------------------------------------------------------------------------------
# Issue 15: any id the project prints, the published bare-id form, SPLIT=FILE
# ------------------------------------------------------------------------------------------------


def test_split_file_takes_the_ids_of_a_predictions_tsv(write_corpus: Callable[..., Path],
                                                       tmp_path: Path,
                                                       cfg: Callable[..., PrepareConfig]) -> None:
    """Eval prints a document's own id ("id" field, not the file name): a predictions.tsv, as
    eval writes it, is a split file (``test=FILE``: its ids carry no split prefix)."""
    import numpy as np

    from rvl_llm.evaluate.outputs import predictions_tsv
    from rvl_llm.inference.scoring import Predictions

    files = {f"{split}_{i:04d}_{i % 3}_aws.json": {"id": f"memo {split} #{i}",
                                                   "ocr": f"{split} {i}"}
             for split in ("train", "validation", "test") for i in range(6)}
    data = write_corpus(files, folder="ids")
    whole = run_prepare(cfg(data_dir=data)).manifest
    printed = doc_ids(whole, "test")
    assert printed[0] == "memo test #0"
    chosen = printed[1::2]
    n = len(chosen)
    tsv = predictions_tsv(Predictions(chosen, np.zeros(n, int), np.zeros(n, int), None, [""] * n,
                                      0), RVL_CDIP_CLASSES)
    (tmp_path / "predictions.tsv").write_text(tsv, encoding="utf-8")
    spec = f"test={tmp_path / 'predictions.tsv'}"
    manifest = run_prepare(cfg(data_dir=data, split_file=(spec,))).manifest
    assert doc_ids(manifest, "test") == chosen
    assert doc_ids(manifest, "train") == doc_ids(whole, "train")  # not listed: whole


def test_split_file_of_bare_ids_in_the_published_form(corpus: Path, tmp_path: Path,
                                                      cfg: Callable[..., PrepareConfig]) -> None:
    """The LLM-CDIP splits: ``train_0000_13`` one a line, no split column, no suffix; the split
    is the id's prefix."""
    names = train_files(corpus)
    tests = sorted(p.name for p in corpus.glob("test_*.json"))
    listed = [names[9], names[0], tests[3]]
    split_file = tmp_path / "published.txt"
    split_file.write_text("".join(n.removesuffix("_aws.json") + "\n" for n in listed))
    manifest = run_prepare(cfg(split_file=(str(split_file),))).manifest
    assert doc_ids(manifest, "train") == [n.removesuffix(".json") for n in (names[0], names[9])]
    assert doc_ids(manifest, "test") == [tests[3].removesuffix(".json")]


def test_split_file_mapping_form_on_the_command_line(corpus: Path, tmp_path: Path,
                                                     tokenizer_dirs: dict[str, Path]) -> None:
    from click.testing import CliRunner

    from rvl_llm.cli import main

    names = train_files(corpus)
    tests = sorted(p.name for p in corpus.glob("test_*.json"))
    (tmp_path / "train_160.txt").write_text(f"{names[4]}\n{names[1]}\n")
    (tmp_path / "test_1.txt").write_text(f"{tests[2].removesuffix('.json')}\n")
    args = ["prepare", "-d", str(corpus), "-m", str(tokenizer_dirs["tiny-mistral"]), "-g",
            "--max-len", "64", "--cache-dir", str(tmp_path / "cache"), "--no-progress",
            "--split-file", f"train={tmp_path / 'train_160.txt'}",
            "--split-file", f"test={tmp_path / 'test_1.txt'}"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    manifest = Manifest.load(next((tmp_path / "cache").glob("*/manifest.json")).parent)
    assert doc_ids(manifest, "train") == [n.removesuffix(".json") for n in (names[1], names[4])]
    assert doc_ids(manifest, "test") == [tests[2].removesuffix(".json")]
    # A file for one split that lists another's document is refused, naming both.
    (tmp_path / "mixed.txt").write_text(f"test {tests[0]}\n")
    refused = CliRunner().invoke(main, [*args[:-4], "--split-file",
                                        f"train={tmp_path / 'mixed.txt'}"])
    assert refused.exit_code == 1
    assert "mixed.txt: line 1: lists a test document" in refused.output
