"""Cache keys, locking and verification of prepared entries under ``--cache-dir``.

The key hashes exactly the named settings that change the shards (``KEY_FIELDS``): the
tokenizer's file contents (not its name), mode, template, max-len, label set, the shard format
version, the source (its kind, column mapping and files: resolved path, size, mtime; or a
``datasets`` fingerprint) and the subset selection when there is one. Builds happen under a
per-key file lock, so a second prepare of the same key waits and then finds the finished entry; a
hit needs no lock.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rvl_llm.atomic import TEMP_PREFIX, staging_path
from rvl_llm.errors import RvlError
from rvl_llm.pipeline.corpus import SourceFile
from rvl_llm.pipeline.manifest import MANIFEST_NAME, Manifest
from rvl_llm.presets import TOKENIZER_FILES

# The settings that change the shards: the key hashes these and nothing else, so a field added
# to the manifest for people (like "source") can never split or merge entries by accident.
KEY_FIELDS = (
    "format_version",
    "mode",
    "max_len",
    "response_template",
    "labels",
    "tokenizer",
    "data",
)
KEY_LENGTH = 20  # hex digits of a key: an entry's folder name
_KEY = re.compile(rf"[0-9a-f]{{{KEY_LENGTH}}}")
_LOCK = re.compile(rf"\.[0-9a-f]{{{KEY_LENGTH}}}\.lock")  # entry_lock's file
# Hashed only when present: an entry prepared without subset flags or a chat prompt keeps the key
# it always had.
OPTIONAL_KEY_FIELDS = ("selection", "chat")


def file_sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def tokenizer_fingerprint(folder: Path) -> dict[str, str]:
    """sha256 of each tokenizer file in the folder: the tokenizer's content."""
    found = {
        name: file_sha256(folder / name) for name in TOKENIZER_FILES if (folder / name).is_file()
    }
    if not found:
        raise RvlError(
            f"--model {folder}: no tokenizer files ({', '.join(TOKENIZER_FILES[:5])}...)"
        )
    return found


def data_fingerprint(
    files: dict[str, list[SourceFile]], bad: dict[str, list[tuple[Path, str]]]
) -> str:
    """Every file of every split (path, size, mtime) and every bad one (path, reason)."""
    digest = hashlib.sha256()
    for split in sorted(files):
        for source in files[split]:
            digest.update(f"{split}\t{source.path}\t{source.size}\t{source.mtime_ns}\n".encode())
        for path, reason in bad.get(split, []):
            digest.update(f"{split}\t{path}\tbad\t{reason}\n".encode())
    return digest.hexdigest()


def cache_key(settings: dict[str, Any]) -> str:
    keyed = {k: settings[k] for k in KEY_FIELDS}
    keyed |= {k: settings[k] for k in OPTIONAL_KEY_FIELDS if settings.get(k) is not None}
    return hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:KEY_LENGTH]


@contextmanager
def entry_lock(cache_dir: Path, key: str) -> Iterator[None]:
    """Exclusive hold on one key; released by the OS if the holder dies.

    Raises OSError when the folder or the lock file cannot be created (a read-only cache): the
    caller knows why it needed the lock and says so."""
    from filelock import FileLock

    cache_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cache_dir / f".{key}.lock")):
        yield


def remove_leftovers(root: Path) -> None:
    """Temporary folders of builds that were killed (only called under the key's lock)."""
    if root.is_dir():
        for child in root.iterdir():
            if child.name.startswith(TEMP_PREFIX):
                shutil.rmtree(child, ignore_errors=True)


def temp_dir(root: Path, name: str) -> Path:
    path = staging_path(root / name)  # names its maker's pid: `cache ls` tells stale from live
    path.mkdir(parents=True)
    return path


def split_problem(manifest: Manifest, split: str) -> str | None:
    """Why a split's shards cannot be trusted (missing, truncated, checksum), or None."""
    for shard, path in zip(
        manifest.split_info(split).shards, manifest.shard_paths(split), strict=True
    ):
        if not path.is_file():
            return f"{path} is missing"
        if path.stat().st_size != shard.bytes:
            return (
                f"{path} is truncated or overwritten ({path.stat().st_size} of {shard.bytes} bytes)"
            )
        if file_sha256(path) != shard.sha256:
            return f"{path} is corrupted (checksum mismatch)"
    return None


def read_manifest(root: Path) -> tuple[Manifest | None, str | None]:
    """The entry's manifest, or None and why it cannot be used (None when there is none):
    unreadable, unsafe, wrongly typed or another format version, it is rebuilt by the caller."""
    if not (root / MANIFEST_NAME).is_file():
        return None, None
    try:
        return Manifest.load(root), None
    except RvlError as err:
        return None, err.message


def list_entries(cache_dir: Path) -> tuple[list[Manifest], list[tuple[Path, str]]]:
    """The entries under ``cache_dir`` that load, and each one that does not with the reason
    (one line naming its manifest). Lock files, temporary folders and folders without a manifest
    (a build that failed or is running: prepare completes it) are not entries."""
    if not cache_dir.is_dir():
        raise RvlError(f"--cache-dir {cache_dir}: no such folder")
    entries, unreadable = [], []
    for folder in sorted(cache_dir.iterdir()):
        if not folder.is_dir() or folder.name.startswith(TEMP_PREFIX):
            continue
        if not (folder / MANIFEST_NAME).exists():
            continue
        try:
            entries.append(Manifest.load(folder))
        except RvlError as err:
            unreadable.append((folder, err.message))
    return entries, unreadable


def holds_cache(folder: Path) -> bool:
    """Whether ``folder`` holds this project's cache: an entry folder (a key's name, with a
    manifest) or a key's lock file. An empty or foreign folder does not."""
    if not folder.is_dir():
        return False
    try:
        for child in folder.iterdir():
            if child.is_dir() and _KEY.fullmatch(child.name) and (child / MANIFEST_NAME).is_file():
                return True
            if child.is_file() and _LOCK.fullmatch(child.name):
                return True
    except OSError:  # unreadable: not a cache this process can use
        return False
    return False


def unreadable_count(unreadable: list[tuple[Path, str]]) -> str:
    n = len(unreadable)
    return f"{n} unreadable cache {'entry' if n == 1 else 'entries'}"


def entry_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
