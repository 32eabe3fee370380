"""Atomic writes: a reader (another stage, a resumed run, `rvl-llm report`) sees the old file or
folder or the new one, never half of one. The one helper for every file and folder the tool
writes in place.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

TEMP_PREFIX = ".tmp-"  # temporary names start with this; cleaners and listings skip them


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Let ``write`` fill a temporary file beside ``path`` (same file system), then rename it
    into place. On any failure the temporary file is removed and ``path`` is untouched."""
    path = Path(path)
    temp = path.with_name(f"{TEMP_PREFIX}{path.name}-{uuid.uuid4().hex[:8]}")
    try:
        write(temp)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    write_atomic(path, lambda temp: temp.write_text(text, encoding="utf-8"))


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")


def replace_dir(source: Path, target: Path) -> None:
    """Move a finished folder into place; an old one is moved aside, then deleted once the new
    one is in place (put back if the move fails)."""
    if not target.exists():
        os.rename(source, target)
        return
    trash = target.with_name(f"{TEMP_PREFIX}old-{target.name}-{uuid.uuid4().hex[:8]}")
    os.rename(target, trash)
    try:
        os.rename(source, target)
    except OSError:
        os.rename(trash, target)
        raise
    shutil.rmtree(trash, ignore_errors=True)


def make_staging_dir(target: Path) -> tuple[Path, list[Path]]:
    """A new temporary folder beside ``target`` to build it in (moved into place with
    ``replace_dir``), and the parent folders this made, innermost first: on failure both go
    with ``discard_staging_dir``. Raises OSError, having made nothing, if the place is not
    writable."""
    created = [p for p in Path(target).parents if not p.exists()]
    staging = Path(target).with_name(f"{TEMP_PREFIX}{Path(target).name}-{uuid.uuid4().hex[:8]}")
    try:
        staging.mkdir(parents=True)
    except OSError:
        _remove_empty(created)
        raise
    return staging, created


def discard_staging_dir(staging: Path, created: list[Path]) -> None:
    """Remove a staging folder and the parents made for it that are still empty."""
    shutil.rmtree(staging, ignore_errors=True)
    _remove_empty(created)


def _remove_empty(created: list[Path]) -> None:
    for path in created:  # innermost first
        try:
            path.rmdir()
        except OSError:
            break  # not empty (another output of the same folder) or already gone
