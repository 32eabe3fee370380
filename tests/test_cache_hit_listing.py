"""A folder's listing on the cache-hit path: listed once, no object per file, and the same key
lines and bad entries whether every name is well formed (the comprehensions) or not (the
per-name fallback)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from rvl_llm.pipeline import cache, corpus
from rvl_llm.pipeline.config import PrepareConfig
from rvl_llm.pipeline.corpus import SplitFiles, scan_folder, split_files
from rvl_llm.pipeline.prepare import run_prepare
from rvl_llm.pipeline.sources import FolderSource


def _old_key_lines(split: str, folder: Path, names: list[str], bad: list[tuple[str, str]]) -> str:
    """The key's lines as the listing wrote them before columns: path, size, mtime per file."""
    lines = []
    for name in names:
        stat = (folder / name).stat()
        lines.append(f"{split}\t{folder / name}\t{stat.st_size}\t{stat.st_mtime_ns}\n")
    lines += [f"{split}\t{folder / name}\tbad\t{reason}\n" for name, reason in bad]
    return "".join(lines)


def test_bad_names_and_broken_links_keep_name_order_and_key_lines(
    tmp_path: Path, write_corpus: Callable[..., Path]
) -> None:
    data = write_corpus({
        "train_0000_3_aws.json": "a",
        "train_0001_x_aws.json": "no label",
        "train_0003_4_aws.json": "b",
        "train_0005_4.json": "no suffix",
        "test_0000_1_aws.json": "c",
    })
    (data / "train_0002_5_aws.json").symlink_to(tmp_path / "gone.json")
    folder, names = scan_folder(data)
    listed = split_files(folder, names, "train_", "_aws")
    no_label = "no label number before '_aws.json' in the file name"
    expected_bad = [
        ("train_0001_x_aws.json", no_label),
        ("train_0002_5_aws.json", "broken symbolic link"),
        ("train_0005_4.json", no_label),
    ]
    assert listed.names == ["train_0000_3_aws.json", "train_0003_4_aws.json"]
    assert listed.labels == [3, 4]
    assert [(p.name, r) for p, r in listed.bad] == expected_bad
    resolved = data.resolve()
    assert listed.key_lines("train") == _old_key_lines("train", resolved, listed.names,
                                                       expected_bad)
    assert [f.path for f in listed.files()] == [str(resolved / n) for n in listed.names]
    # The well-formed split takes the comprehensions: the same lines.
    test = split_files(folder, names, "test_", "_aws")
    assert test.key_lines("test") == _old_key_lines("test", resolved, test.names, [])
    digest = hashlib.sha256()  # splits in sorted order, as the key always took them
    digest.update(_old_key_lines("test", resolved, test.names, []).encode())
    digest.update(_old_key_lines("train", resolved, listed.names, expected_bad).encode())
    assert cache.data_fingerprint({"train": listed, "test": test}) == digest.hexdigest()


def test_a_label_outside_the_set_is_bad_on_a_hit_too(write_corpus: Callable[..., Path]) -> None:
    data = write_corpus({"train_0_3_aws.json": "a", "train_1_20_aws.json": "b",
                         "validation_0_1_aws.json": "c", "test_0_2_aws.json": "d"})
    source = FolderSource(PrepareConfig(data_dir=data, model="tiny-llama3"))
    bad = source.bad_entries(["train", "test"])
    assert bad == {
        "train": [(str(data.resolve() / "train_1_20_aws.json"),
                   "label 20 is outside the label set (0..15, see --labels)")],
        "test": [],
    }
    assert source.list_splits(["train"])["train"].bad == bad["train"]


def test_a_hit_lists_the_folder_once_and_makes_no_object_per_file(
    tmp_path: Path, small_corpus: Path, tokenizer_dirs: dict[str, Path],
    fast_tokenizer_loads: None, monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = PrepareConfig(data_dir=small_corpus, model=str(tokenizer_dirs["tiny-mistral"]),
                        cache_dir=tmp_path / "cache", max_len=64, generative=True,
                        progress=False)
    first = run_prepare(cfg)
    listed: list[str] = []
    real_listdir = os.listdir

    def counting_listdir(path: str | Path = ".") -> list[str]:
        listed.append(str(path))
        return real_listdir(path)

    def no_files(self: SplitFiles) -> list[corpus.SourceFile]:
        raise AssertionError("a hit built a SourceFile per file")

    monkeypatch.setattr(os, "listdir", counting_listdir)
    monkeypatch.setattr(SplitFiles, "files", no_files)
    hit = run_prepare(cfg)
    assert hit.built == () and hit.root == first.root
    data = {str(small_corpus), str(small_corpus.resolve())}
    assert len([p for p in listed if p in data]) == 1
