"""`rvl-llm prepare`, `rvl-llm cache ls` and `rvl-llm cache verify` through click's CliRunner."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from rvl_llm.cli import main
from rvl_llm.pipeline.manifest import SPLITS, Manifest

ROOT = Path(__file__).resolve().parent.parent


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def prepare(data: Path, model: str, cache_dir: Path, *args: str) -> Result:
    return invoke("prepare", "--data", str(data), "--model", model, "--cache-dir", str(cache_dir),
                  "--no-progress", *args)


@pytest.fixture
def mistral(tokenizer_dirs: dict[str, Path], fast_tokenizer_loads: None) -> str:
    return str(tokenizer_dirs["tiny-mistral"])


SPLIT_LINE = re.compile(
    r"^  (?P<split>\w+) +(?P<rows>\d+) rows  truncated +(?P<share>[\d.]+)%  empty +\d+"
    r"  skipped +\d+  median +\d+ tokens  \[(?P<status>built|cached|kept)\]$"
)
SUMMARY = re.compile(
    r"^prepare: (?P<what>cache hit|built [a-z, ]+) in (?P<seconds>\d+\.\d\d)s "
    r"\((?P<mode>generative|classifier), max-len (?P<max_len>\d+), (?P<labels>\d+) labels\)$"
)


def summary(result: Result) -> tuple[dict[str, re.Match], re.Match, Path]:
    """Per-split lines, the summary line and the shard folder (the last line) of a prepare."""
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    splits = {m["split"]: m for m in map(SPLIT_LINE.match, lines) if m}
    (total,) = [m for m in map(SUMMARY.match, lines) if m]
    return splits, total, Path(lines[-1])


def test_prepare_prints_a_summary_and_the_shard_folder_last(
    small_corpus: Path, tmp_path: Path, mistral: str
) -> None:
    result = prepare(small_corpus, mistral, tmp_path / "cache", "--generative", "--max-len", "64")
    splits, total, folder = summary(result)
    m = Manifest.load(folder)
    assert folder == m.root and folder.parent == (tmp_path / "cache").resolve()
    assert list(splits) == list(SPLITS)
    for split, line in splits.items():
        info = m.splits[split]
        assert int(line["rows"]) == info.rows == 4
        assert line["share"] == f"{100 * info.truncated / info.rows:.1f}" == "25.0"
        assert line["status"] == "built"
    assert total["what"] == "built train, validation, test"
    assert (total["mode"], total["max_len"], total["labels"]) == ("generative", "64", "16")
    assert float(total["seconds"]) > 0

    again = prepare(small_corpus, mistral, tmp_path / "cache", "--generative", "--max-len", "64")
    splits, total, same = summary(again)
    assert same == folder
    assert total["what"] == "cache hit"
    assert {line["status"] for line in splits.values()} == {"cached"}


def test_prepare_only_some_splits(small_corpus: Path, tmp_path: Path, mistral: str) -> None:
    first = summary(prepare(small_corpus, mistral, tmp_path / "cache", "--splits", "test"))
    assert list(first[0]) == ["test"] and first[1]["what"] == "built test"
    second = summary(prepare(small_corpus, mistral, tmp_path / "cache", "--splits", "train,test"))
    assert second[2] == first[2]
    assert second[1]["what"] == "built train"
    assert {s: m["status"] for s, m in second[0].items()} == {"train": "built", "test": "cached"}


def test_prepare_the_sample_with_a_preset(
    sample_root: Path, sample_data: Path, tmp_path: Path, fast_tokenizer_loads: None
) -> None:
    if sample_root != ROOT / "sample":
        pytest.skip("presets point at the repo's sample/ (make sample)")
    stamp = json.loads((sample_root / ".complete").read_text())
    result = prepare(sample_data, "tiny-llama3", tmp_path / "cache", "--generative",
                     "--max-len", "256")
    splits, _, folder = summary(result)
    m = Manifest.load(folder)
    assert {s: int(line["rows"]) for s, line in splits.items()} == stamp["documents"]
    assert m.settings["source"] == {"model": "tiny-llama3",
                                    "location": str(sample_root / "models" / "tiny-llama3")}
    assert sum(m.splits["train"].class_counts.values()) == stamp["documents"]["train"]
    assert 0 < m.splits["train"].truncated < m.splits["train"].rows
    assert m.splits["train"].length["max"] <= 256
    assert m.splits["train"].empty > 0


def test_a_damaged_shard_is_named_and_rebuilt(
    small_corpus: Path, tmp_path: Path, mistral: str
) -> None:
    folder = summary(prepare(small_corpus, mistral, tmp_path / "cache"))[2]
    shard = folder / "train" / "shard-00000.arrow"
    original = shard.read_bytes()
    shard.write_bytes(original[: len(original) // 3])

    verify = invoke("cache", "verify", "--cache-dir", str(tmp_path / "cache"))
    assert verify.exit_code == 1
    assert f"{folder.name} {'train':<10} {shard} is truncated" in verify.output
    assert f"{folder.name} {'test':<10} OK" in verify.output
    assert verify.output.splitlines()[-1] == (
        f"Error: 1 damaged split(s) in {tmp_path / 'cache'}; prepare rebuilds them")

    result = prepare(small_corpus, mistral, tmp_path / "cache")
    assert f"cache: {shard} is truncated or overwritten" in result.stderr
    _, total, same = summary(result)
    assert same == folder and total["what"] == "built train"
    assert shard.read_bytes() == original

    verify = invoke("cache", "verify", "--cache-dir", str(tmp_path / "cache"))
    assert verify.exit_code == 0
    assert verify.output.splitlines() == [f"{folder.name} {s:<10} OK" for s in SPLITS]


def test_cache_ls_lists_entries(small_corpus: Path, tmp_path: Path, mistral: str) -> None:
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    empty = invoke("cache", "ls", "--cache-dir", str(cache_dir))
    assert (empty.exit_code, empty.output) == (0, f"no cache entries in {cache_dir}\n")
    generative = Manifest.load(summary(prepare(
        small_corpus, mistral, cache_dir, "--generative", "--max-len", "64"))[2])
    classifier = Manifest.load(summary(prepare(
        small_corpus, mistral, cache_dir, "--splits", "train", "--max-len", "128"))[2])
    listing = invoke("cache", "ls", "--cache-dir", str(cache_dir))
    assert listing.exit_code == 0
    lines = {line.split()[0]: line for line in listing.output.splitlines()}
    assert set(lines) == {generative.key, classifier.key}
    assert re.search(r"generative +max-len 64 +16 labels .* train=4 validation=4 test=4  model "
                     + re.escape(mistral) + "$", lines[generative.key])
    assert re.search(r"classifier +max-len 128 .* train=4  model", lines[classifier.key])


def test_help_is_instant_and_lists_the_commands() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    assert {"prepare", "cache"} <= set(re.findall(r"^  (\w+)", result.output, re.M))
    result = invoke("prepare", "--help")
    assert result.exit_code == 0 and "--max-len" in result.output
