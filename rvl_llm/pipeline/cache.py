"""Cache keys, locking and verification of prepared entries under ``--cache-dir``.

Builds happen under a per-key file lock, so a second prepare of the same key waits and then finds
the finished entry; a hit needs no lock. Shards are hashed once, when written: a hit checks sizes
and mtimes (``split_problem``), ``cache verify`` hashes every byte (``verify_split``). So a hit
at RVL-CDIP's 400k files costs about its folder listing, not a read of every shard.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from stat import S_ISREG
from typing import Any

from rvl_llm.atomic import TEMP_PREFIX
from rvl_llm.errors import RvlError
from rvl_llm.pipeline.corpus import SplitFiles
from rvl_llm.pipeline.manifest import MANIFEST_NAME, Manifest
from rvl_llm.presets import TOKENIZER_FILES

# The parts that change the shards: the key hashes these and nothing else, so a part added to the
# manifest for people (like "source") can never split or merge entries by accident. "prompt" is
# the resolved PromptSpec whole, so a new prompt setting reaches the key with no edit here.
KEY_FIELDS = ("format_version", "prompt", "data", "selection")
KEY_LENGTH = 20  # hex digits of a key: an entry's folder name
_KEY = re.compile(rf"[0-9a-f]{{{KEY_LENGTH}}}")
_LOCK = re.compile(rf"\.[0-9a-f]{{{KEY_LENGTH}}}\.lock")  # entry_lock's file


def file_sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def tokenizer_fingerprint(folder: Path) -> dict[str, str]:
    """sha256 of each tokenizer file in the folder: the tokenizer's content."""
    found = {n: file_sha256(folder / n) for n in TOKENIZER_FILES if (folder / n).is_file()}
    if not found:
        raise RvlError(f"--model {folder}: no tokenizer files "
                       f"({', '.join(TOKENIZER_FILES[:5])}...)")
    return found


def data_fingerprint(splits: dict[str, SplitFiles]) -> str:
    """Every file of every split (path, size, mtime) and every bad one (path, reason)."""
    digest = hashlib.sha256()
    for split in sorted(splits):
        # One update per split, not per file: the same bytes, a fraction of the calls at 400k.
        digest.update(splits[split].key_lines(split).encode())
    return digest.hexdigest()


@contextmanager
def paused_gc() -> Iterator[None]:
    """Python's cycle collector off for a block. Listing a 400k-file corpus allocates about a
    million small objects that all stay alive (and form no cycles): the collector's passes over
    them cost a cache hit more than a second, a third of its time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def cache_key(settings: dict[str, Any]) -> str:
    keyed = {k: settings[k] for k in KEY_FIELDS}
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


def split_problem(manifest: Manifest, split: str, *, checksums: bool = False) -> str | None:
    """Why a split's shards cannot be trusted (missing, truncated, checksum), or None.

    Every shard's size is checked; its sha256 when ``checksums`` (``cache verify``), or when the
    shard may have been written since the build hashed it: its mtime is not the one recorded
    then, or not older than the manifest (git's "racily clean" case)."""
    try:
        written = (manifest.root / MANIFEST_NAME).stat().st_mtime_ns
    except OSError:  # a manifest removed meanwhile: trust no recorded time
        written = 0
    shards = manifest.split_info(split).shards
    for shard, path in zip(shards, manifest.shard_paths(split), strict=True):
        try:
            stat = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return f"{path} is missing"
        if not S_ISREG(stat.st_mode):
            return f"{path} is missing"
        if stat.st_size != shard.bytes:
            return f"{path} is truncated or overwritten ({stat.st_size} of {shard.bytes} bytes)"
        unchanged = stat.st_mtime_ns == shard.mtime_ns < written
        if (checksums or not unchanged) and file_sha256(path) != shard.sha256:
            return f"{path} is corrupted (checksum mismatch)"
    return None


def verify_split(manifest: Manifest, split: str) -> str | None:
    """``cache verify``: every shard's size and sha256. A corrupt shard whose size and mtime did
    not change (bit rot) passes a hit's check: its mtime is set to now, so the next prepare
    reads it, finds the mismatch and rebuilds the split."""
    problem = split_problem(manifest, split, checksums=True)
    if problem is not None and problem.endswith("(checksum mismatch)"):
        for path in manifest.shard_paths(split):
            with contextlib.suppress(OSError):  # a read-only cache: nothing prepare could do
                os.utime(path)
    return problem


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
        if folder.name.startswith(TEMP_PREFIX) or not (folder / MANIFEST_NAME).exists():
            continue
        try:
            entries.append(Manifest.load(folder))
        except RvlError as err:
            unreadable.append((folder, err.message))
    return entries, unreadable


def holds_cache(folder: Path) -> bool:
    """Whether ``folder`` holds this project's cache: an entry folder (a key's name, with a
    manifest) or a key's lock file. An empty or foreign folder does not."""
    try:
        return folder.is_dir() and any(
            (_KEY.fullmatch(child.name) and (child / MANIFEST_NAME).is_file())
            or (_LOCK.fullmatch(child.name) and child.is_file()) for child in folder.iterdir()
        )
    except OSError:  # unreadable: not a cache this process can use
        return False


def unreadable_count(unreadable: list[tuple[Path, str]]) -> str:
    n = len(unreadable)
    return f"{n} unreadable cache {'entry' if n == 1 else 'entries'}"


def entry_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
