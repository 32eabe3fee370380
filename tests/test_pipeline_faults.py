"""Faults a hostile review found in prepare and its cache, one test (or more) each: skipped files
as records, the key's named fields and resolved paths, manifests that point outside their entry,
a full disk, a read-only cache, broken links, unreadable entries in `cache ls/verify`, and the
wording of malformed-JSON errors."""

from __future__ import annotations

import errno
import json
import os
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from rvl_llm.cli import main
from rvl_llm.errors import RvlError
from rvl_llm.pipeline import cache
from rvl_llm.pipeline.config import PrepareConfig
from rvl_llm.pipeline.corpus import BadFile, SourceFile, read_document
from rvl_llm.pipeline.manifest import FORMAT_VERSION, Manifest, SkippedFile
from rvl_llm.pipeline.prepare import run_prepare
from rvl_llm.pipeline.shards import ShardWriter

GOOD = {
    "train_0000_0_aws.json": "Dear Sir, thank you for your letter of May 3.",
    "validation_0000_1_aws.json": "Name: ____ Date: ____ Signature: ____",
    "test_0000_2_aws.json": "From: a@b.com To: c@d.com Subject: budget",
}
ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.fixture
def mistral(tokenizer_dirs: dict[str, Path], fast_tokenizer_loads: None) -> str:
    return str(tokenizer_dirs["tiny-mistral"])


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def prepare(data: Path, model: str, cache_dir: Path, *args: str) -> Result:
    return invoke("prepare", "--data", str(data), "--model", model, "--cache-dir", str(cache_dir),
                  "--max-len", "64", "--no-progress", *args)


def config(data: Path, model: str, cache_dir: Path, **overrides: Any) -> PrepareConfig:
    return PrepareConfig(**{"data_dir": data, "model": model, "cache_dir": cache_dir,
                            "max_len": 64, "progress": False, **overrides})


def error_line(result: Result) -> str:
    """The whole output of a clean failure: one `Error: ...` line, exit 1, no traceback."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def same_shards(a: Manifest, b: Manifest) -> bool:
    """The same entry, split for split, whatever each build's timing."""
    return replace(a, splits={}) == replace(b, splits={}) and {
        s: replace(info, seconds=0) for s, info in a.splits.items()
    } == {s: replace(info, seconds=0) for s, info in b.splits.items()}


def tree(folder: Path) -> dict[str, bytes | None]:
    """Every path under the folder with its bytes (None for a folder): what must not change."""
    return {str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes()
            for p in sorted(folder.rglob("*"))}


def temp_leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.startswith(cache.TEMP_PREFIX)]


# ------------------------------------------------------------------------------------------------
# 1. Skipped files are records
# ------------------------------------------------------------------------------------------------


def test_skipped_files_are_stored_as_records_and_read_back(
    write_corpus: Callable[..., Path], tmp_path: Path, mistral: str
) -> None:
    # A reason holding ": " and a name holding ":" survive the round trip unchanged.
    data = write_corpus(GOOD | {"train_0001_3_aws.json": b'{"ocr": "x",}',
                                "train_0002_x:y_aws.json": "no label"})
    result = prepare(data, mistral, tmp_path / "cache", "--skip-bad-files")
    assert result.exit_code == 0, result.output
    m = Manifest.load(Path(result.output.splitlines()[-1]))
    expected = (  # names without a label are found before reading: they come first
        SkippedFile("train_0002_x:y_aws.json", "no label number before '_aws.json' in the file "
                                               "name"),
        SkippedFile("train_0001_3_aws.json", "malformed JSON (Expecting property name enclosed "
                                             "in double quotes, line 1 column 13)"),
    )
    assert m.splits["train"].skipped_files == expected
    on_disk = json.loads((m.root / "manifest.json").read_text())
    assert on_disk["format_version"] == FORMAT_VERSION == 3
    assert on_disk["splits"]["train"]["skipped_files"] == [
        {"name": s.name, "reason": s.reason} for s in expected]
    assert [line for line in result.output.splitlines() if "skipped " in line][:2] == [
        f"  skipped {s.name}: {s.reason}" for s in expected]

    refused = prepare(data, mistral, tmp_path / "cache")
    assert error_line(refused) == (
        f"Error: {data.resolve() / expected[0].name}: {expected[0].reason} (--skip-bad-files "
        "skips such files)")
    # Once the name is fixed, the cached shards that skipped the malformed file are refused.
    (data / "train_0002_x:y_aws.json").unlink()
    prepare(data, mistral, tmp_path / "cache", "--skip-bad-files")
    refused = prepare(data, mistral, tmp_path / "cache")
    assert error_line(refused) == (
        f"Error: {data / expected[1].name}: {expected[1].reason} (the cached shards skipped it: "
        "pass --skip-bad-files)")


def test_an_entry_of_the_old_layout_is_rebuilt(
    write_corpus: Callable[..., Path], tmp_path: Path, mistral: str
) -> None:
    data = write_corpus(GOOD | {"train_0001_3_aws.json": b"{broken"})
    cfg = config(data, mistral, tmp_path / "cache", skip_bad_files=True)
    first = run_prepare(cfg)
    path = first.root / "manifest.json"
    old = json.loads(path.read_text())
    old["format_version"] = 1
    for split in old["splits"].values():
        split["skipped_files"] = [f"{s['name']}: {s['reason']}" for s in split["skipped_files"]]
    path.write_text(json.dumps(old))
    with pytest.raises(RvlError, match=f"shard format 1 is not this version's {FORMAT_VERSION}"):
        Manifest.load(first.root)
    again = run_prepare(cfg)
    assert again.built == ("train", "validation", "test")
    assert Manifest.load(first.root) == again.manifest
    assert same_shards(again.manifest, first.manifest)


# ------------------------------------------------------------------------------------------------
# 2, 3. The cache key: exactly the named settings, resolved paths
# ------------------------------------------------------------------------------------------------

SETTINGS: dict[str, Any] = {
    "format_version": 3, "mode": "generative", "max_len": 64, "labels": ["a", "b"],
    "prompt": {"settings": {"max_len": 64}, "tokenizer": {"tokenizer.json": "00"}},
    "data": {"dir": "/data", "fingerprint": "ff"}, "selection": None,
    "source": {"model": "m", "location": "/m"},
}
OTHER_VALUES: dict[str, Any] = {
    "format_version": 4,
    "prompt": {"settings": {"max_len": 64}, "tokenizer": {"tokenizer.json": "01"}},
    "data": {"dir": "/data", "fingerprint": "fe"}, "selection": {"train_size": 8},
}


def test_the_key_hashes_exactly_the_named_settings() -> None:
    assert set(cache.KEY_FIELDS) == set(OTHER_VALUES)
    key = cache.cache_key(SETTINGS)
    for unrelated in ({"note": "for people"}, {"source": {"model": "other", "location": "/o"}}):
        assert cache.cache_key(SETTINGS | unrelated) == key
    for field, value in OTHER_VALUES.items():
        assert cache.cache_key(SETTINGS | {field: value}) != key, field


def test_relative_and_absolute_data_paths_share_an_entry(
    write_corpus: Callable[..., Path], tmp_path: Path, mistral: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = write_corpus(GOOD)
    monkeypatch.chdir(tmp_path)
    relative = run_prepare(config(Path("data"), mistral, tmp_path / "cache"))
    absolute = run_prepare(config(data.resolve(), mistral, tmp_path / "cache"))
    dotted = run_prepare(config(Path("./data/../data"), mistral, tmp_path / "cache"))
    assert relative.root == absolute.root == dotted.root
    assert absolute.built == dotted.built == ()
    assert [p.name for p in (tmp_path / "cache").iterdir() if p.is_dir()] == [relative.root.name]


def test_the_key_does_not_depend_on_the_splits_asked_for(
    write_corpus: Callable[..., Path], tmp_path: Path, mistral: str
) -> None:
    # A train file outside the label set: set aside when train is built, and when it is not.
    data = write_corpus(GOOD | {"train_0001_16_aws.json": "a label of another corpus"})
    test_only = run_prepare(config(data, mistral, tmp_path / "cache", splits=("test",)))
    train = run_prepare(config(data, mistral, tmp_path / "cache", splits=("train",),
                               skip_bad_files=True))
    assert train.root == test_only.root
    assert (train.built, list(train.manifest.splits)) == (("train",), ["train", "test"])


def test_a_bad_file_removed_or_added_changes_the_key(
    write_corpus: Callable[..., Path], tmp_path: Path, mistral: str
) -> None:
    data = write_corpus(GOOD | {"train_0001_x_aws.json": "no label number"})
    cfg = config(data, mistral, tmp_path / "cache", skip_bad_files=True)
    with_bad = run_prepare(cfg)
    (data / "train_0001_x_aws.json").unlink()
    without = run_prepare(cfg)
    assert without.root != with_bad.root
    assert without.manifest.splits["train"].skipped_files == ()


# ------------------------------------------------------------------------------------------------
# 4. A manifest cannot point outside its entry
# ------------------------------------------------------------------------------------------------


def test_a_shard_name_leading_outside_the_entry_is_not_read_and_the_entry_is_rebuilt(
    write_corpus: Callable[..., Path], tmp_path: Path, mistral: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = config(write_corpus(GOOD), mistral, tmp_path / "cache", splits=("train",))
    first = run_prepare(cfg)
    # A real file outside the cache, with the size and checksum the manifest will claim: the
    # old code verified it and served it as the split.
    outside = tmp_path / "outside.arrow"
    outside.write_bytes(first.manifest.shard_paths("train")[0].read_bytes())
    before = outside.stat()
    path = first.root / "manifest.json"
    crafted = json.loads(path.read_text())
    crafted["splits"]["train"]["shards"][0]["file"] = "../../../outside.arrow"
    path.write_text(json.dumps(crafted))
    assert (first.root / "train" / "../../../outside.arrow").resolve() == outside.resolve()
    with pytest.raises(RvlError, match=r"shard file '\.\./\.\./\.\./outside\.arrow' of split "
                                       "train is not a plain file name"):
        Manifest.load(first.root)

    hashed: list[Path] = []
    real_sha256 = cache.file_sha256
    monkeypatch.setattr(cache, "file_sha256", lambda p: hashed.append(Path(p)) or real_sha256(p))
    again = run_prepare(cfg)
    assert outside.resolve() not in [p.resolve() for p in hashed]
    assert again.built == ("train",)
    assert Manifest.load(first.root) == again.manifest
    assert same_shards(again.manifest, first.manifest)
    assert outside.stat().st_mtime_ns == before.st_mtime_ns
    assert outside.read_bytes() == first.manifest.shard_paths("train")[0].read_bytes()


@pytest.mark.parametrize("name", ["", ".", "..", "sub/shard.arrow", "..\\shard.arrow", "a\0b"])
def test_a_manifest_with_an_unsafe_shard_name_is_unreadable(
    write_corpus: Callable[..., Path], tmp_path: Path, mistral: str, name: str
) -> None:
    first = run_prepare(config(write_corpus(GOOD), mistral, tmp_path / "cache",
                               splits=("test",)))
    path = first.root / "manifest.json"
    crafted = json.loads(path.read_text())
    crafted["splits"]["test"]["shards"][0]["file"] = name
    path.write_text(json.dumps(crafted))
    with pytest.raises(RvlError, match=r"unreadable manifest .*not a plain file name"):
        Manifest.load(first.root)
    assert cache.read_manifest(first.root)[0] is None


def test_a_manifest_with_an_unknown_split_is_unreadable(
    write_corpus: Callable[..., Path], tmp_path: Path, mistral: str
) -> None:
    cfg = config(write_corpus(GOOD), mistral, tmp_path / "cache", splits=("test",))
    first = run_prepare(cfg)
    path = first.root / "manifest.json"
    crafted = json.loads(path.read_text())
    crafted["splits"]["../test"] = crafted["splits"]["test"]
    path.write_text(json.dumps(crafted))
    with pytest.raises(RvlError, match=r"unreadable manifest \(unknown split '\.\./test'\)"):
        Manifest.load(first.root)
    assert run_prepare(cfg).built == ("test",)


# ------------------------------------------------------------------------------------------------
# 5. A full disk
# ------------------------------------------------------------------------------------------------


def fail_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    def write(self: ShardWriter, rows: object, docs: object) -> None:
        raise ENOSPC

    monkeypatch.setattr(ShardWriter, "write", write)


def test_a_full_disk_fails_in_one_line_and_removes_the_partial_split(
    write_corpus: Callable[..., Path], tmp_path: Path, mistral: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache_dir = tmp_path / "cache"
    fail_writes(monkeypatch)
    result = prepare(write_corpus(GOOD), mistral, cache_dir)
    assert error_line(result) == (
        f"Error: --cache-dir {cache_dir}: cannot write the shards (No space left on device); "
        "the partial split was removed")
    assert list(cache_dir.rglob("manifest.json")) == []
    assert list(cache_dir.rglob("*.arrow")) == []
    assert temp_leftovers(cache_dir) == []


def test_a_full_disk_leaves_the_previous_manifest_untouched(
    write_corpus: Callable[..., Path], tmp_path: Path, mistral: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data, cache_dir = write_corpus(GOOD), tmp_path / "cache"
    first = run_prepare(config(data, mistral, cache_dir, splits=("train",)))
    before = tree(cache_dir)
    fail_writes(monkeypatch)
    result = prepare(data, mistral, cache_dir, "--splits", "train,validation")
    assert "cannot write the shards (No space left on device)" in error_line(result)
    assert tree(cache_dir) == before
    assert Manifest.load(first.root) == first.manifest


def test_a_manifest_that_cannot_be_written_fails_in_one_line(
    write_corpus: Callable[..., Path], tmp_path: Path, mistral: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache_dir = tmp_path / "cache"
    real_replace = os.replace

    def replace(source: Any, target: Any) -> None:
        if Path(target).name == "manifest.json":
            raise ENOSPC
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    result = prepare(write_corpus(GOOD), mistral, cache_dir, "--splits", "test")
    assert error_line(result) == (
        f"Error: --cache-dir {cache_dir}: cannot write the manifest (No space left on device); "
        "the previous one was kept")
    assert list(cache_dir.rglob("manifest.json")) == []
    assert temp_leftovers(cache_dir) == []


# ------------------------------------------------------------------------------------------------
# 6. A read-only cache serves hits
# ------------------------------------------------------------------------------------------------


def read_only(monkeypatch: pytest.MonkeyPatch, cache_dir: Path) -> None:
    """What a read-only cache folder does (tests run as root, so chmod cannot): the lock file
    cannot be created, and nothing under the folder can be made, moved or replaced."""

    def entry_lock(folder: Path, key: str) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(folder / f".{key}.lock"))

    def refuse(real: Callable[..., Any]) -> Callable[..., Any]:
        def call(path: Any, *args: Any, **kwargs: Any) -> Any:
            if Path(path).resolve().is_relative_to(cache_dir.resolve()):
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return real(path, *args, **kwargs)

        return call

    monkeypatch.setattr(cache, "entry_lock", entry_lock)
    for name in ("mkdir", "rename", "replace", "unlink", "rmdir"):
        monkeypatch.setattr(os, name, refuse(getattr(os, name)))


def test_a_read_only_cache_serves_a_hit_and_names_what_it_cannot_build(
    write_corpus: Callable[..., Path], tmp_path: Path, mistral: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data, cache_dir = write_corpus(GOOD), tmp_path / "cache"
    first = run_prepare(config(data, mistral, cache_dir))
    before = tree(cache_dir)
    read_only(monkeypatch, cache_dir)

    hit = prepare(data, mistral, cache_dir)
    assert hit.exit_code == 0, hit.output
    assert "prepare: cache hit" in hit.output
    assert hit.output.splitlines()[-1] == str(first.root)

    missed = prepare(data, mistral, cache_dir, "--max-len", "65")
    line = error_line(missed)
    assert re.fullmatch(
        rf"Error: --cache-dir {re.escape(str(cache_dir))}: cannot write \(Permission denied\); "
        r"the entry [0-9a-f]{20} is missing or incomplete, so it must be built", line), line
    assert tree(cache_dir) == before


# ------------------------------------------------------------------------------------------------
# 7. Broken symbolic links
# ------------------------------------------------------------------------------------------------


def test_a_broken_symbolic_link_is_a_bad_file(
    write_corpus: Callable[..., Path], tmp_path: Path, mistral: str
) -> None:
    data = write_corpus(GOOD)
    (data / "train_0001_3_aws.json").symlink_to(tmp_path / "gone.json")
    cache_dir = tmp_path / "cache"

    refused = prepare(data, mistral, cache_dir)
    assert error_line(refused) == (
        f"Error: {data.resolve() / 'train_0001_3_aws.json'}: broken symbolic link "
        "(--skip-bad-files skips such files)")
    assert not cache_dir.exists()

    skipped = prepare(data, mistral, cache_dir, "--skip-bad-files")
    assert skipped.exit_code == 0, skipped.output
    assert "  skipped train_0001_3_aws.json: broken symbolic link" in skipped.output
    m = Manifest.load(Path(skipped.output.splitlines()[-1]))
    assert m.splits["train"].skipped_files == (
        SkippedFile("train_0001_3_aws.json", "broken symbolic link"),)
    assert m.splits["train"].rows == 1


# ------------------------------------------------------------------------------------------------
# 8. `cache ls` and `cache verify` report what they cannot read
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["ls", "verify"])
def test_cache_commands_on_a_missing_folder(tmp_path: Path, command: str) -> None:
    result = invoke("cache", command, "--cache-dir", str(tmp_path / "nowhere"))
    assert error_line(result) == f"Error: --cache-dir {tmp_path / 'nowhere'}: no such folder"


def two_entries_one_broken(
    write_corpus: Callable[..., Path], tmp_path: Path, mistral: str, damage: str
) -> tuple[Path, Manifest, Path]:
    """A good entry and one whose manifest is damaged; lock files, a temporary folder and an
    unfinished build (a folder without a manifest) beside them, none of them entries."""
    data, cache_dir = write_corpus(GOOD), tmp_path / "cache"
    good = run_prepare(config(data, mistral, cache_dir, splits=("test",))).manifest
    broken = run_prepare(config(data, mistral, cache_dir, splits=("test",), max_len=65)).root
    path = broken / "manifest.json"
    if damage == "no source":
        crafted = json.loads(path.read_text())
        del crafted["settings"]["source"]
        path.write_text(json.dumps(crafted))
    else:
        path.write_text("{not json")
    (cache_dir / f"{cache.TEMP_PREFIX}leftover").mkdir()
    (cache_dir / "0123456789abcdef0123").mkdir()
    assert list(cache_dir.glob(".*.lock"))
    return cache_dir, good, broken


@pytest.mark.parametrize(("damage", "why"), [
    ("no source", "unreadable manifest (settings.source.model is missing)"),
    ("garbage", "unreadable manifest (Expecting property name"),
])
def test_cache_ls_reports_an_unreadable_entry(
    write_corpus: Callable[..., Path], tmp_path: Path, mistral: str, damage: str, why: str
) -> None:
    cache_dir, good, broken = two_entries_one_broken(write_corpus, tmp_path, mistral, damage)
    result = invoke("cache", "ls", "--cache-dir", str(cache_dir))
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    lines = result.output.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith(good.key) and lines[0].endswith(f"model {mistral}")
    assert lines[1].startswith(f"{broken / 'manifest.json'}: {why}")
    assert lines[2] == f"Error: 1 unreadable cache entry in {cache_dir}"


def test_cache_verify_reports_every_unreadable_entry(
    write_corpus: Callable[..., Path], tmp_path: Path, mistral: str
) -> None:
    cache_dir, good, broken = two_entries_one_broken(write_corpus, tmp_path, mistral, "garbage")
    other = run_prepare(config(write_corpus(GOOD), mistral, cache_dir, splits=("test",),
                               max_len=66)).root
    (other / "manifest.json").write_text("[]")
    result = invoke("cache", "verify", "--cache-dir", str(cache_dir))
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    lines = result.output.splitlines()
    assert lines[0] == f"{good.key} {'test':<10} OK"
    unreadable = sorted([broken, other])
    assert [line.split(": ")[0] for line in lines[1:3]] == [
        str(p / "manifest.json") for p in unreadable]
    assert lines[3] == f"Error: 2 unreadable cache entries in {cache_dir}; prepare rebuilds them"


def test_cache_verify_ignores_lock_files_temporary_folders_and_unfinished_builds(
    write_corpus: Callable[..., Path], tmp_path: Path, mistral: str
) -> None:
    cache_dir, good, broken = two_entries_one_broken(write_corpus, tmp_path, mistral, "garbage")
    (broken / "manifest.json").unlink()  # now an unfinished build: prepare completes it
    result = invoke("cache", "verify", "--cache-dir", str(cache_dir))
    assert (result.exit_code, result.output) == (0, f"{good.key} {'test':<10} OK\n")


# ------------------------------------------------------------------------------------------------
# 9. The wording of malformed-JSON errors
# ------------------------------------------------------------------------------------------------

MALFORMED = {
    b'{"ocr": }': "Expecting value, line 1 column 9",
    b'{"ocr": "x",}': "Expecting property name enclosed in double quotes, line 1 column 13",
    b'{"ocr": "unterminated': "Unterminated string starting at line 1 column 9",
    b"": "Expecting value, line 1 column 1",
    b"\xff\xfe": "Expecting value, line 1 column 1",
    b'{"ocr": "x"}\n{"ocr": "y"}': "Extra data, line 2 column 1",
}


@pytest.mark.parametrize(("raw", "why"), MALFORMED.items(), ids=[repr(r) for r in MALFORMED])
def test_malformed_json_reads_cleanly(tmp_path: Path, raw: bytes, why: str) -> None:
    path = tmp_path / "train_0000_1_aws.json"
    path.write_bytes(raw)
    with pytest.raises(BadFile) as caught:
        read_document(SourceFile(str(path), 1))
    assert caught.value.reason == f"malformed JSON ({why})"


def test_malformed_json_through_the_cli(
    write_corpus: Callable[..., Path], tmp_path: Path, mistral: str
) -> None:
    data = write_corpus(GOOD | {"train_0001_3_aws.json": b'{"ocr": "unterminated'})
    result = prepare(data, mistral, tmp_path / "cache")
    assert error_line(result) == (
        f"Error: {data.resolve() / 'train_0001_3_aws.json'}: malformed JSON (Unterminated string "
        "starting at line 1 column 9) (--skip-bad-files skips such files)")
