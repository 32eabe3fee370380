"""Cache keys, locking and verification of prepared entries under ``--cache-dir``.

The key hashes everything that changes the shards: the tokenizer's file contents (not its name),
mode, template, max-len, label set, the shard format version and the input files (path, size,
mtime). Builds happen under a per-key file lock, so a second prepare of the same key waits and
then finds the finished entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rvl_llm.errors import RvlError
from rvl_llm.pipeline.corpus import SourceFile
from rvl_llm.pipeline.manifest import MANIFEST_NAME, Manifest
from rvl_llm.presets import TOKENIZER_FILES

TEMP_PREFIX = ".tmp-"
_KEY_EXCLUDES = ("source",)  # recorded for people, not part of the key


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


def data_fingerprint(files: dict[str, list[SourceFile]]) -> str:
    digest = hashlib.sha256()
    for split in sorted(files):
        for source in files[split]:
            digest.update(f"{split}\t{source.path}\t{source.size}\t{source.mtime_ns}\n".encode())
    return digest.hexdigest()


def cache_key(settings: dict[str, Any]) -> str:
    keyed = {k: v for k, v in settings.items() if k not in _KEY_EXCLUDES}
    return hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:20]


@contextmanager
def entry_lock(cache_dir: Path, key: str) -> Iterator[None]:
    """Exclusive hold on one key; released by the OS if the holder dies."""
    from filelock import FileLock

    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RvlError(f"--cache-dir {cache_dir}: cannot create ({err.strerror})") from err
    with FileLock(str(cache_dir / f".{key}.lock")):
        yield


def remove_leftovers(root: Path) -> None:
    """Temporary folders of builds that were killed (only called under the key's lock)."""
    if root.is_dir():
        for child in root.iterdir():
            if child.name.startswith(TEMP_PREFIX):
                shutil.rmtree(child, ignore_errors=True)


def temp_dir(root: Path, name: str) -> Path:
    path = root / f"{TEMP_PREFIX}{name}-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    return path


def replace_dir(source: Path, target: Path) -> None:
    """Move a finished folder into place; an old (corrupt) one is moved aside, then deleted."""
    if target.exists():
        trash = target.with_name(f"{TEMP_PREFIX}old-{target.name}-{uuid.uuid4().hex[:8]}")
        os.rename(target, trash)
        shutil.rmtree(trash, ignore_errors=True)
    os.rename(source, target)


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f"{TEMP_PREFIX}{path.name}-{uuid.uuid4().hex[:8]}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


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


def read_manifest(root: Path) -> Manifest | None:
    if not (root / MANIFEST_NAME).is_file():
        return None
    try:
        return Manifest.load(root)
    except RvlError:
        return None  # unreadable or another format version: rebuilt by the caller


def list_entries(cache_dir: Path) -> list[Manifest]:
    if not cache_dir.is_dir():
        return []
    found = (read_manifest(p) for p in sorted(cache_dir.iterdir()) if p.is_dir())
    return [m for m in found if m is not None]


def entry_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
