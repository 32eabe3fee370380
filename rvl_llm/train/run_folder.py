"""What a run folder ``LOG_DIR/NAME/`` is, and how to use one safely.

A run of ``rvl-llm train`` writes ``recipe.json``, the Trainer's ``checkpoint-N/`` folders and
``final/``. The checks here run before anything is touched: ``--overwrite`` deletes only runs,
``--log-dir`` is writable before prepare and the model load, one ``train`` per name at a time
(``run_lock``), and a checkpoint half-written when the process was killed is told apart from a
complete one and set aside as ``incomplete-checkpoint-N`` so neither we nor the Trainer resume
from it.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from rvl_llm.errors import RvlError
from rvl_llm.inference.checkpoint import (
    ADAPTER_WEIGHTS,
    CHECKPOINT_PREFIX,
    FINAL_DIR,
    MODEL_WEIGHTS,
)
from rvl_llm.recipe import RECIPE_NAME

INCOMPLETE_PREFIX = "incomplete-"
TRAINER_STATE = "trainer_state.json"  # the Trainer's TRAINER_STATE_NAME
# One weights file (adapter, full model or head-only classifier) or a sharded full model.
WEIGHTS_FILES = (MODEL_WEIGHTS, ADAPTER_WEIGHTS)
WEIGHTS_INDEX = "model.safetensors.index.json"

# The same pattern as transformers' get_last_checkpoint: "checkpoint-" and digits, nothing else.
_CHECKPOINT = re.compile(rf"^{re.escape(CHECKPOINT_PREFIX)}(\d+)$")
# set_aside may add ".K" when the plain name is taken.
_INCOMPLETE = re.compile(rf"^{re.escape(INCOMPLETE_PREFIX + CHECKPOINT_PREFIX)}\d+(\.\d+)?$")


def is_run_folder(path: Path) -> bool:
    """True when ``path`` holds something a run of this tool writes."""
    if not path.is_dir() or path.is_symlink():
        return False
    # A bare final/ could be anyone's: ours holds a recipe.
    if (path / RECIPE_NAME).is_file() or (path / FINAL_DIR / RECIPE_NAME).is_file():
        return True
    return any((_CHECKPOINT.match(p.name) or _INCOMPLETE.match(p.name)) and p.is_dir()
               for p in path.iterdir())


def check_overwritable(run_dir: Path, option: str = "--overwrite") -> None:
    """Refuse to let ``option`` delete ``run_dir`` unless it is missing, empty or a run."""
    keep = "nothing was deleted: move it or choose another --name"
    if run_dir.is_symlink():  # rmtree refuses links, and the target may be anyone's
        raise RvlError(f"{option}: {run_dir} is a symbolic link, not a run of rvl-llm; {keep}")
    if not run_dir.exists():
        return
    if not run_dir.is_dir():
        raise RvlError(f"{option}: {run_dir} is a file, not a run of rvl-llm; {keep}")
    if next(run_dir.iterdir(), None) is None or is_run_folder(run_dir):
        return
    raise RvlError(f"{option}: {run_dir} is not a run of rvl-llm (no {RECIPE_NAME}, {FINAL_DIR}/ "
                   f"or {CHECKPOINT_PREFIX}N/); {keep}")


def check_log_dir(log_dir: Path) -> None:
    """Create ``log_dir`` if missing and prove a file can be made and removed in it.

    A probe, not ``os.access``: root passes every access check, a read-only mount does not.
    """
    if log_dir.exists() and not log_dir.is_dir():
        raise RvlError(f"--log-dir: {log_dir} is a file, not a folder")
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RvlError(f"--log-dir: cannot create {log_dir} ({_reason(err)})") from err
    try:
        handle, probe = tempfile.mkstemp(prefix=".rvl-llm-probe-", dir=log_dir)
        os.close(handle)
        os.unlink(probe)
    except OSError as err:
        raise RvlError(f"--log-dir: cannot write in {log_dir} ({_reason(err)}); choose a "
                       "writable folder") from err


def _reason(err: OSError) -> str:
    return err.strerror or type(err).__name__


@contextmanager
def run_lock(log_dir: Path, name: str) -> Iterator[None]:
    """Hold ``log_dir/.NAME.lock`` for a whole train; a second holder is refused at once.

    The lock lives beside the run folder, so replacing the run folder keeps it. The OS frees it
    when the process dies (kill -9 included). A fresh, non-singleton, not thread-local lock:
    filelock re-enters a lock through the same object, but a second object is refused, in this
    process as in any other.
    """
    path = log_dir / f".{name}.lock"
    lock = FileLock(str(path), timeout=0, thread_local=False, is_singleton=False)
    try:
        lock.acquire()
    except Timeout as err:  # before OSError: Timeout is a TimeoutError
        raise RvlError(f"--name {name}: another rvl-llm train is running in {log_dir / name} "
                       f"(lock {path}); wait for it or choose another --name") from err
    except OSError as err:
        raise RvlError(f"--log-dir: cannot create the lock {path} ({_reason(err)})") from err
    try:
        yield
    finally:
        lock.release()


def _json_object(path: Path) -> dict[str, Any] | None:
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # missing, unreadable, truncated or not UTF-8
        return None
    return found if isinstance(found, dict) else None


def _non_empty(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0


def _has_weights(folder: Path) -> bool:
    if any(_non_empty(folder / name) for name in WEIGHTS_FILES):
        return True
    index = _json_object(folder / WEIGHTS_INDEX)
    shards = index.get("weight_map") if index else None
    if not isinstance(shards, dict) or not shards:
        return False
    return all(_non_empty(folder / str(shard)) for shard in set(shards.values()))


def is_complete_checkpoint(folder: Path) -> bool:
    """True when the save of ``folder`` finished.

    The Trainer writes weights, optimiser, scheduler, rng and trainer_state.json, then our
    on_save callback writes recipe.json last: a parseable recipe means the rest was written.
    The other checks catch a folder whose recipe came from elsewhere.
    """
    return (folder.is_dir()
            and _json_object(folder / RECIPE_NAME) is not None
            and _json_object(folder / TRAINER_STATE) is not None
            and _has_weights(folder))


def _checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """``checkpoint-N`` folders by N, oldest first (a name sort puts 10 before 9)."""
    if not run_dir.is_dir():
        return []
    found = []
    for path in run_dir.iterdir():
        match = _CHECKPOINT.match(path.name)
        if match and path.is_dir():
            found.append((int(match.group(1)), path))
    return sorted(found)


def resume_point(run_dir: Path) -> tuple[Path | None, list[Path]]:
    """(the newest complete checkpoint or None, the incomplete ones newer than it, oldest first).

    Incomplete folders older than the newest complete one are left alone: the Trainer's own
    scans only ever pick the newest.
    """
    newer: list[Path] = []
    for _, path in reversed(_checkpoints(run_dir)):
        if is_complete_checkpoint(path):
            return path, newer[::-1]
        newer.append(path)
    return None, newer[::-1]


def set_aside(folders: list[Path]) -> list[Path]:
    """Rename each ``checkpoint-N`` to ``incomplete-checkpoint-N`` (``.1``, ``.2``... if taken).

    The Trainer's scans (``checkpoint-*``) then skip it; nothing is deleted. Call it on the main
    process only, under ``run_lock``.
    """
    moved = []
    for folder in folders:
        target = folder.with_name(INCOMPLETE_PREFIX + folder.name)
        suffix = 1
        # os.rename would silently replace an empty folder of that name: look first.
        while target.exists() or target.is_symlink():
            target = folder.with_name(f"{INCOMPLETE_PREFIX}{folder.name}.{suffix}")
            suffix += 1
        os.rename(folder, target)
        moved.append(target)
    return moved
