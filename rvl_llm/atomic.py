"""Atomic writes: a reader (another stage, a resumed run, `rvl-llm report`) sees the old file or
folder or the new one, never half of one. The one helper for every file and folder the tool
writes in place.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rvl_llm.errors import RvlError

TEMP_PREFIX = ".tmp-"  # temporary names start with this; cleaners and listings skip them
# A staging name: TEMP_PREFIX + the target's name + the maker's pid and host + a random part.
# The pid lets a later run tell a killed run's leftovers from a live run's work in progress.
_HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:6]  # a shared disk's hosts
_STAGING = re.compile(
    rf"^{re.escape(TEMP_PREFIX)}(?P<name>.+)-(?P<pid>\d+)-(?P<host>[0-9a-f]{{6}})-[0-9a-f]{{8}}$")


@dataclass(frozen=True)
class Staging:
    """A staging file or folder found on disk, and whether the process that made it lives."""

    path: Path
    target: str  # the name it was to take
    pid: int | None  # None: a name without a pid (an older version's)
    alive: bool | None  # None: unknown (no pid, or made on another host)

    def describe(self) -> str:
        """One line for a listing (``cache ls``): the path, its size and whose it is."""
        if self.alive is None:
            whose = "owner unknown: remove it by hand if no run is writing it"
        elif self.alive:
            whose = f"in use by process {self.pid}"
        else:
            whose = f"stale: process {self.pid} is gone; the next run of its command removes it"
        return f"staging {self.path}  {_size(self.path) / 2**20:.1f} MiB  ({whose})"


def staging_path(target: Path) -> Path:
    """A new, unused name beside ``target`` to build it under (same file system: the rename is
    atomic), naming this process as its maker."""
    target = Path(target)
    return target.with_name(
        f"{TEMP_PREFIX}{target.name}-{os.getpid()}-{_HOST}-{uuid.uuid4().hex[:8]}")


def find_staging(folder: Path) -> list[Staging]:
    """The staging files and folders directly in ``folder``, sorted by name."""
    found = []
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []  # a folder that cannot be listed holds nothing we can clean
    for name in names:
        if not name.startswith(TEMP_PREFIX):
            continue
        match = _STAGING.match(name)
        if match is None:
            found.append(Staging(Path(folder, name), name[len(TEMP_PREFIX):], None, None))
            continue
        pid = int(match["pid"])
        alive = _pid_alive(pid) if match["host"] == _HOST else None
        found.append(Staging(Path(folder, name), match["name"], pid, alive))
    return found


def remove_stale_staging(target: Path) -> list[Path]:
    """Remove the staging files and folders of ``target`` whose maker has died (killed before
    it could clean up); return them. A live maker's, another host's and an unnamed maker's are
    kept: only a dead owner proves the work is abandoned."""
    target = Path(target)
    removed = []
    for item in find_staging(target.parent):
        if item.target != target.name or item.alive is not False:
            continue
        try:
            if item.path.is_dir() and not item.path.is_symlink():
                shutil.rmtree(item.path)
            else:
                item.path.unlink()
        except OSError:
            continue  # another run removed it first, or it is not ours to remove
        removed.append(item.path)
    return removed


def _size(path: Path) -> int:
    try:
        if not path.is_dir():
            return path.lstat().st_size
        return sum(p.lstat().st_size for p in path.rglob("*"))
    except OSError:
        return 0  # removed meanwhile: the listing is a snapshot


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except OSError:
        pass  # another user's live process (PermissionError), or cannot tell: keep its files
    return True


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Let ``write`` fill a temporary file beside ``path`` (same file system), then rename it
    into place. On any failure the temporary file is removed and ``path`` is untouched."""
    path = Path(path)
    temp = staging_path(path)
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
    with ``discard_staging_dir``. Stale staging folders of ``target`` (their maker is dead) are
    removed first. Raises OSError, having made nothing, if the place is not writable."""
    created = [p for p in Path(target).parents if not p.exists()]
    remove_stale_staging(target)  # a killed earlier build's folder (it may be gigabytes)
    staging = staging_path(target)
    try:
        staging.mkdir(parents=True)
    except OSError:
        discard_staging_dir(staging, created)
        raise
    return staging, created


@contextmanager
def staging_dir(target: Path, failed: Callable[[OSError], str], *, make: bool = True,
                agree: Callable[[str | None], str | None] | None = None) -> Iterator[Path | None]:
    """A temporary folder beside ``target`` to build it in (``make_staging_dir``: making it
    proves the place writable before anything heavy runs), moved into place by the caller with
    ``replace_dir``. On failure it goes, with every parent folder made for it that is still
    empty: a failed build leaves nothing behind. An OSError making it is an RvlError with the
    message ``failed(err)``.

    Several processes writing one output (eval under a launch): the one given ``make`` makes it
    and the others get None; ``agree`` (a collective) hands its verdict to every process, so all
    of them fail together or none does.
    """
    problem, staging, created = None, None, []
    if make:
        try:
            staging, created = make_staging_dir(target)
        except OSError as err:
            problem = failed(err)
    if agree is not None:
        problem = agree(problem)
    if problem is not None:
        raise RvlError(problem)
    try:
        yield staging
    except BaseException:
        if staging is not None:
            discard_staging_dir(staging, created)
        raise


def discard_staging_dir(staging: Path, created: list[Path]) -> None:
    """Remove a staging folder and the parents made for it that are still empty."""
    shutil.rmtree(staging, ignore_errors=True)
    for path in created:  # innermost first
        try:
            path.rmdir()
        except OSError:
            break  # not empty (another output of the same folder) or already gone
