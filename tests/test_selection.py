"""select_split and selection_settings, pure: sampling, split files, their errors, the key part."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from rvl_llm.errors import RvlError
from rvl_llm.labels import RVL_CDIP_CLASSES
from rvl_llm.pipeline.config import PrepareConfig
from rvl_llm.pipeline.selection import (
    MAX_LISTED_KEYS,
    Selection,
    _allocate,
    select_split,
    selection_settings,
)

NAMES = tuple(RVL_CDIP_CLASSES)


def config(**overrides: object) -> PrepareConfig:
    return PrepareConfig(data_dir=Path("data"), model="tiny-llama3", **overrides)  # type: ignore[arg-type]


def corpus(sizes: dict[int, int], split: str = "train") -> tuple[list[str], list[int]]:
    """File names and labels: ``sizes[label]`` documents of each label, interleaved."""
    keys, labels = [], []
    index = 0
    for round_ in range(max(sizes.values())):
        for label, size in sorted(sizes.items()):
            if round_ < size:
                keys.append(f"{split}_{index:05d}_{label}_aws.json")
                labels.append(label)
                index += 1
    return keys, labels


def chosen(selection: Selection, keys: list[str]) -> list[str]:
    assert selection.indexes is not None
    return [keys[i] for i in selection.indexes]


def label_counts(selection: Selection, labels: list[int]) -> Counter[int]:
    assert selection.indexes is not None
    return Counter(labels[i] for i in selection.indexes)


# --- sampling -------------------------------------------------------------------------------


def test_no_flags_selects_nothing_and_adds_no_key_part() -> None:
    keys, labels = corpus({0: 3, 1: 3})
    assert select_split("train", keys, labels, config(), NAMES) == Selection(None, None)
    assert selection_settings(config()) is None


@pytest.mark.parametrize("split", ["validation", "test"])
def test_sampling_flags_leave_other_splits_whole(split: str) -> None:
    keys, labels = corpus({0: 5, 1: 5}, split)
    for cfg in (config(train_size=4), config(train_per_class=1)):
        assert select_split(split, keys, labels, cfg, NAMES) == Selection(None, None)


def test_train_size_keeps_class_proportions() -> None:
    keys, labels = corpus({0: 500, 1: 300, 2: 150, 3: 50})  # 50%, 30%, 15%, 5%
    selection = select_split("train", keys, labels, config(train_size=160), NAMES)
    assert label_counts(selection, labels) == {0: 80, 1: 48, 2: 24, 3: 8}
    assert selection.indexes == tuple(sorted(selection.indexes or ()))  # listing order
    assert selection.info is not None
    assert selection.info["selected"] == 160 and selection.info["listed"] == 1000
    assert selection.info["class_counts"] == {NAMES[0]: 80, NAMES[1]: 48, NAMES[2]: 24,
                                              NAMES[3]: 8}


def test_train_size_largest_remainder_then_one_per_class() -> None:
    # Quotas 5, 3, 1.9, 0.1: floors 5+3+1+0, the spare one to the largest remainder (class 2),
    # then class 3 gets one from the class furthest above its quota (class 2 again).
    assert _allocate(10, {0: 50, 1: 30, 2: 19, 3: 1}) == {0: 5, 1: 3, 2: 1, 3: 1}
    assert _allocate(4, {0: 97, 1: 1, 2: 1, 3: 1}) == {0: 1, 1: 1, 2: 1, 3: 1}
    for total in range(16, 200, 7):
        sizes = {c: 1 + c * c for c in range(16)}
        take = _allocate(total, sizes)
        assert sum(take.values()) == total
        assert all(1 <= take[c] <= sizes[c] for c in sizes)


def test_train_size_keeps_a_rare_class() -> None:
    keys, labels = corpus({0: 990, 7: 10})
    selection = select_split("train", keys, labels, config(train_size=20), NAMES)
    assert label_counts(selection, labels) == {0: 19, 7: 1}


def test_train_size_errors_name_the_option() -> None:
    keys, labels = corpus({c: 10 for c in range(16)})
    with pytest.raises(RvlError, match=r"--train-size 15: smaller than the 16 classes"):
        select_split("train", keys, labels, config(train_size=15), NAMES)
    with pytest.raises(RvlError, match=r"--train-size 161: the train split has only 160"):
        select_split("train", keys, labels, config(train_size=161), NAMES)


def test_train_per_class_notes_short_classes() -> None:
    keys, labels = corpus({0: 30, 1: 4, 2: 10})
    selection = select_split("train", keys, labels, config(train_per_class=10), NAMES)
    assert label_counts(selection, labels) == {0: 10, 1: 4, 2: 10}
    assert selection.info is not None
    assert selection.info["notes"] == [
        f"{NAMES[1]}: only 4 train documents, fewer than --train-per-class 10; all kept"
    ]
    assert selection.info["class_counts"] == {NAMES[0]: 10, NAMES[1]: 4, NAMES[2]: 10}
    assert selection.info["keys"] == chosen(selection, keys)


def test_same_seed_same_documents_other_seed_others() -> None:
    keys, labels = corpus({c: 50 for c in range(16)})
    first = select_split("train", keys, labels, config(train_per_class=10), NAMES)
    again = select_split("train", keys, labels, config(train_per_class=10), NAMES)
    other = select_split("train", keys, labels,
                         config(train_per_class=10, subset_seed=7), NAMES)
    assert first == again
    assert set(chosen(first, keys)) != set(chosen(other, keys))


def test_listing_order_does_not_matter() -> None:
    keys, labels = corpus({c: 40 for c in range(16)})
    pairs = list(zip(keys, labels, strict=True))
    random.Random(3).shuffle(pairs)
    shuffled_keys, shuffled_labels = [k for k, _ in pairs], [y for _, y in pairs]
    for cfg in (config(train_size=160), config(train_per_class=10)):
        in_order = select_split("train", keys, labels, cfg, NAMES)
        shuffled = select_split("train", shuffled_keys, shuffled_labels, cfg, NAMES)
        assert set(chosen(in_order, keys)) == set(chosen(shuffled, shuffled_keys))
        assert shuffled.indexes == tuple(sorted(shuffled.indexes or ()))


def test_published_sizes_nest_with_one_seed() -> None:
    # 160, 800 and 1,600 documents of one seed: each subset contains the smaller ones.
    keys, labels = corpus({c: 120 for c in range(16)})
    subsets = [set(chosen(select_split("train", keys, labels, config(train_per_class=n),
                                       NAMES), keys)) for n in (10, 50, 100)]
    assert len(subsets[0]) == 160 and len(subsets[2]) == 1600
    assert subsets[0] <= subsets[1] <= subsets[2]


def test_sample_is_pinned() -> None:
    # The exact documents: a change here changes every published --subset-seed subset.
    keys, labels = corpus({0: 6, 1: 6})
    selection = select_split("train", keys, labels, config(train_per_class=2), NAMES)
    assert chosen(selection, keys) == [
        "train_00000_0_aws.json", "train_00001_1_aws.json",
        "train_00006_0_aws.json", "train_00011_1_aws.json",
    ]


def test_many_keys_keep_only_their_hash() -> None:
    keys = [f"train_{i:06d}_0_aws.json" for i in range(MAX_LISTED_KEYS + 1)]
    labels = [0] * len(keys)
    selection = select_split("train", keys, labels,
                             config(train_per_class=MAX_LISTED_KEYS + 1), NAMES)
    assert selection.info is not None
    assert "keys" not in selection.info and len(selection.info["keys_sha256"]) == 64


# --- split files ----------------------------------------------------------------------------


def test_split_file_json_selects_listed_documents(tmp_path: Path) -> None:
    keys, labels = corpus({0: 4, 1: 4})
    split_file = tmp_path / "subset.json"
    # With and without .json; listing order and duplicates do not matter.
    split_file.write_text(json.dumps({"train": [keys[5], keys[1].removesuffix(".json"),
                                                keys[5]]}))
    cfg = config(split_file=(str(split_file),))
    selection = select_split("train", keys, labels, cfg, NAMES)
    assert selection.indexes == (1, 5)
    assert selection.info is not None
    assert selection.info["keys"] == [keys[1], keys[5]]
    assert selection.info["split_file"] == "subset.json"
    # Splits the file does not list are taken whole.
    test_keys, test_labels = corpus({0: 2}, "test")
    assert select_split("test", test_keys, test_labels, cfg, NAMES) == Selection(None, None)


def test_split_file_text_form(tmp_path: Path) -> None:
    keys, labels = corpus({0: 3, 1: 3}, "test")
    split_file = tmp_path / "subset.txt"
    split_file.write_text(f"# published test subset\n\ntest\t{keys[4]}\ntest   {keys[0]}\n"
                          f"train train_00000_0_aws\n")
    selection = select_split("test", keys, labels, config(split_file=(str(split_file),)), NAMES)
    assert selection.indexes == (0, 4)


def test_split_file_matches_table_ids(tmp_path: Path) -> None:
    # Row numbers and an id column.
    keys, labels = ["0", "1", "2", "doc-7", "doc-8"], [0, 1, 0, 1, 1]
    split_file = tmp_path / "subset.json"
    split_file.write_text(json.dumps({"validation": [2, "doc-7"]}))
    cfg = config(split_file=(str(split_file),))
    selection = select_split("validation", keys, labels, cfg, NAMES)
    assert selection.indexes == (2, 3)


def test_split_file_refuses_an_id_that_names_several_documents(tmp_path: Path) -> None:
    # Row numbers of a split given in two files repeat: "0" cannot say which row it means.
    keys, labels = ["0", "1", "0", "1"], [0, 1, 0, 1]
    split_file = tmp_path / "subset.json"
    split_file.write_text(json.dumps({"train": ["1", "0"]}))
    with pytest.raises(RvlError, match=r"^--split-file .*subset.json: id '1' names 2 train "
                       r"documents of --data; give each document of a split its own id"):
        select_split("train", keys, labels, config(split_file=(str(split_file),)), NAMES)


def test_split_file_then_sampling_samples_the_listed_train(tmp_path: Path) -> None:
    keys, labels = corpus({0: 20, 1: 20})
    listed = keys[:10]
    split_file = tmp_path / "subset.json"
    split_file.write_text(json.dumps({"train": listed}))
    cfg = config(split_file=(str(split_file),), train_per_class=2)
    selection = select_split("train", keys, labels, cfg, NAMES)
    assert set(chosen(selection, keys)) <= set(listed)
    assert label_counts(selection, labels) == {0: 2, 1: 2}


def test_split_file_missing_ids_are_named(tmp_path: Path) -> None:
    keys, labels = corpus({0: 3})
    split_file = tmp_path / "subset.json"
    split_file.write_text(json.dumps({"train": [keys[0]] + [f"gone_{i}" for i in range(7)]}))
    with pytest.raises(RvlError, match=r"subset.json: 7 train ids not found in --data: gone_0, "
                       r"gone_1, gone_2, gone_3, gone_4 and 2 more$"):
        select_split("train", keys, labels, config(split_file=(str(split_file),)), NAMES)


@pytest.mark.parametrize(("content", "message"), [
    ('{"train": ["a",\n "b",,]}', r"line 2: not valid JSON"),
    ('["a", "b"]', r"cannot tell the split of id 'a' \(no prefix such as 'train_'\)"),
    ('[true]', r"the list must be a list of ids"),
    ('{"dev": ["a"]}', r"unknown split 'dev' \(choose from train, validation, test\)"),
    ('{"train": "a"}', r"'train' must be a list of ids"),
    ('{"train": []}', r"split 'train' lists no documents"),
    ("train a.json\ntrain\n", r"line 2: expected 'split id'"),
    ("train a.json\n\ndev b.json\n", r"line 3: unknown split 'dev'"),
    ("# nothing\n", r"lists no documents"),
    (b"train \xff\xfe", r"not UTF-8"),
])
def test_split_file_errors_name_the_file(tmp_path: Path, content: str | bytes,
                                         message: str) -> None:
    split_file = tmp_path / "subset.txt"
    if isinstance(content, bytes):
        split_file.write_bytes(content)
    else:
        split_file.write_text(content)
    keys, labels = corpus({0: 2})
    with pytest.raises(RvlError, match=rf"^--split-file {split_file}: {message}"):
        select_split("train", keys, labels, config(split_file=(str(split_file),)), NAMES)


def test_missing_split_file_is_an_error(tmp_path: Path) -> None:
    cfg = config(split_file=(str(tmp_path / "nowhere.json"),))
    with pytest.raises(RvlError, match=r"--split-file .*nowhere.json: no such file"):
        selection_settings(cfg)
    with pytest.raises(RvlError, match=r"nowhere.json: no such file"):
        select_split("train", ["a"], [0], cfg, NAMES)


# --- the cache-key part ---------------------------------------------------------------------


def test_settings_name_each_flag_and_the_file_content_not_its_path(tmp_path: Path) -> None:
    assert selection_settings(config(train_size=160)) == {"train_size": 160, "subset_seed": 1234}
    assert selection_settings(config(train_per_class=10, subset_seed=5)) == {
        "train_per_class": 10, "subset_seed": 5}
    variants = [config(train_size=160), config(train_size=161),
                config(train_size=160, subset_seed=1), config(train_per_class=10)]
    assert len({json.dumps(selection_settings(c), sort_keys=True) for c in variants}) == 4

    one, copy, other = tmp_path / "a.json", tmp_path / "copy" / "b.json", tmp_path / "c.json"
    copy.parent.mkdir()
    one.write_text('{"train": ["x"]}')
    copy.write_text('{"train": ["x"]}')
    other.write_text('{"train": ["y"]}')
    by_file = {p: selection_settings(config(split_file=(str(p),))) for p in (one, copy, other)}
    assert by_file[one] == by_file[copy] != by_file[other]
    assert str(one) not in json.dumps(by_file[one])
    assert set(by_file[one] or {}) == {"split_file_sha256"}  # no seed: nothing is sampled
