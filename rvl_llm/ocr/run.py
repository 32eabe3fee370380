"""``run_ocr(cfg)``: SOURCE -> one OCR JSON per document in OUT, resumable, on a local process
pool or a Ray cluster.

1. Check everything that can be checked before writing: the engine loads, OUT is empty or an
   OCR output made with the same settings (a changed setting is refused, naming its flag).
2. Lock OUT, remove temporary files a killed run left, write the manifest.
3. Stream the listing through the backend (bounded work in flight: flat memory); the driver
   writes each document atomically. A document whose output holds the same source hash is
   skipped, so a rerun after kill -9 gives exactly the uninterrupted output.
4. With --format jsonl/parquet, write the table from the documents, atomically.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock, Timeout

from rvl_llm.atomic import TEMP_PREFIX, write_atomic, write_json_atomic, write_text_atomic
from rvl_llm.errors import RvlError
from rvl_llm.logs import Log
from rvl_llm.ocr.config import OcrConfig, OcrSettings, flag_of
from rvl_llm.ocr.documents import (
    MANIFEST,
    MANIFEST_FORMAT,
    Outcome,
    loaded_engine,
    process,
    read_manifest,
    recorded_sha,
)
from rvl_llm.ocr.ray_backend import ray_outcomes
from rvl_llm.ocr.sources import BadItem, Item, Listed, guess_kind, list_items

Work = tuple[Item, str | None]  # a document and the source hash its existing output records
IN_FLIGHT_PER_WORKER = 4  # documents queued per worker: keeps workers busy, memory flat
LOCK = ".ocr.lock"


@dataclass
class OcrResult:
    out: Path
    written: int = 0
    done: int = 0  # already there from an earlier run
    pages: int = 0
    bad: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        rate = self.pages / self.seconds if self.seconds else 0.0
        return (f"ocr: {self.written} documents written ({self.pages} pages, {rate:.2f} pages/s), "
                f"{self.done} already done, {len(self.bad)} bad -> {self.out}")


def store_of(cfg: OcrConfig) -> Path:
    """Where the documents go: OUT itself, or OUT.parts/ beside a table output."""
    if cfg.out_format == "folder":
        return cfg.out
    return cfg.out.with_name(f"{cfg.out.name}.parts")


def run_ocr(cfg: OcrConfig, log: Log = print) -> OcrResult:
    store = store_of(cfg)
    _check_out(cfg, store)
    engine, version = loaded_engine(cfg.settings)  # fails here, before any write, if missing
    kind = guess_kind(cfg)
    listing = list_items(cfg)
    first = list(itertools.islice(listing, 1))  # SOURCE's own errors come before any write
    listing = itertools.chain(first, listing)
    # A second walk of the listing gives the progress bar its total (tables: not counted).
    total = _count(cfg) if kind in ("folder", "rvl-cdip") and _show(cfg) else None
    workers = "ray actors" if cfg.backend == "ray" else f"{cfg.workers()} workers"
    log(f"ocr: {kind} {cfg.source} -> {cfg.out}, {engine.name} ({version}), {workers}")
    store.mkdir(parents=True, exist_ok=True)
    try:
        lock = FileLock(str(store / LOCK), timeout=0)
        lock.acquire()
    except Timeout as err:
        raise RvlError(f"-o {cfg.out}: another rvl-llm ocr is writing there; wait for it") from err
    try:
        _remove_temporaries(store)
        write_json_atomic(store / MANIFEST, {
            "format": MANIFEST_FORMAT, "engine": {"name": engine.name, "version": version},
            "settings": cfg.settings.to_dict(), "source": str(cfg.source), "source_kind": kind})
        result = OcrResult(cfg.out)
        start = time.perf_counter()
        work = _work(listing, store, result)
        outcomes = ray_outcomes(cfg, work) if cfg.backend == "ray" else _local_outcomes(cfg, work)
        _consume(outcomes, store, result, total, cfg, start)
        result.seconds = time.perf_counter() - start
        if cfg.out_format != "folder":
            _write_table(cfg, store)
    finally:
        lock.release()
    return result


def _check_out(cfg: OcrConfig, store: Path) -> None:
    if cfg.out_format == "folder" and cfg.out.exists() and not cfg.out.is_dir():
        raise RvlError(f"-o {cfg.out}: a file, not a folder (--format jsonl or parquet writes "
                       "one table file)")
    if cfg.out_format != "folder" and cfg.out.is_dir():
        raise RvlError(f"-o {cfg.out}: a folder; --format {cfg.out_format} writes one file")
    if not store.is_dir():
        return
    manifest = read_manifest(store)
    if manifest is None:
        if any(not p.name.startswith(".") for p in store.iterdir()):
            raise RvlError(f"-o {store}: a folder with other files and no OCR manifest; "
                           "choose a new or empty folder")
        return
    old = OcrSettings.from_dict(manifest["settings"], str(store / MANIFEST)).to_dict()
    new = cfg.settings.to_dict()
    for name, value in new.items():
        if old[name] != value:
            raise RvlError(f"{flag_of(name)} {value!r}: {store} was made with {old[name]!r}; "
                           f"rerun with {flag_of(name)} {old[name]!r} to resume, or write to a "
                           "new -o")
    _, version = loaded_engine(cfg.settings)
    if manifest["engine"]["version"] != version:
        raise RvlError(f"--engine {cfg.settings.engine}: {store} was made with "
                       f"{manifest['engine']['version']}, this is {version}; write to a new -o")


def _show(cfg: OcrConfig) -> bool:
    return sys.stderr.isatty() if cfg.progress is None else cfg.progress


def _count(cfg: OcrConfig) -> int:
    return sum(1 for _ in list_items(cfg))


def _remove_temporaries(store: Path) -> None:
    """Half-written files of a killed run (we hold the lock: nobody else is writing)."""
    for path in store.glob(f"{TEMP_PREFIX}*"):
        path.unlink(missing_ok=True)


def _work(listing: Iterator[Listed], store: Path, result: OcrResult) -> Iterator[Work]:
    names: dict[str, str] = {}  # output name -> the document that has it (~100 bytes each)
    for item in listing:
        if isinstance(item, BadItem):
            result.bad.append((item.where, item.reason))
            continue
        if item.name in names:  # a.png and a.tif, or one label line twice: one output file
            result.bad.append((item.path or item.id, f"same output file {item.name} as "
                                                     f"{names[item.name]}; rename one"))
            continue
        names[item.name] = item.path or item.id
        target = store / item.name
        yield item, recorded_sha(target) if target.exists() else None


# Local backend: a process pool, one engine per worker (-j 1 runs in this process).

_WORKER: dict[str, object] = {}


def _init_worker(settings: OcrSettings) -> None:
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")  # one core per worker: no oversubscription
    _WORKER["settings"] = settings
    _WORKER["engine"] = loaded_engine(settings)


def _run_one(work: Work) -> Outcome:
    settings = _WORKER["settings"]
    engine, version = _WORKER["engine"]  # type: ignore[misc]
    return process(work[0], engine, version, settings, work[1])  # type: ignore[arg-type]


def _local_outcomes(cfg: OcrConfig, work: Iterator[Work]) -> Iterator[Outcome]:
    workers = cfg.workers()
    if workers == 1:
        engine, version = loaded_engine(cfg.settings)
        for item, done in work:
            yield process(item, engine, version, cfg.settings, done)
        return
    try:
        with ProcessPoolExecutor(workers, initializer=_init_worker,
                                 initargs=(cfg.settings,)) as pool:
            pending: set[Future[Outcome]] = set()
            for w in work:
                pending.add(pool.submit(_run_one, w))
                if len(pending) >= workers * IN_FLIGHT_PER_WORKER:
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    yield from (f.result() for f in finished)
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                yield from (f.result() for f in finished)
    except BrokenProcessPool as err:
        raise RvlError(f"-j {workers}: a worker process died (out of memory? try a smaller -j); "
                       "rerun the same command to resume: finished documents are kept") from err


def _consume(outcomes: Iterator[Outcome], store: Path, result: OcrResult, total: int | None,
             cfg: OcrConfig, start: float) -> None:
    from tqdm import tqdm

    with tqdm(total=total, unit="doc", disable=not _show(cfg), dynamic_ncols=True) as bar:
        for outcome in outcomes:
            if outcome.status == "bad":
                result.bad.append((outcome.name, outcome.text))
            elif outcome.status == "done":
                result.done += 1
            else:
                write_text_atomic(store / outcome.name, outcome.text)
                result.written += 1
                result.pages += outcome.pages
            bar.update(1)
            elapsed = time.perf_counter() - start
            bar.set_postfix_str(f"{result.pages / elapsed if elapsed else 0:.2f} pages/s",
                                refresh=False)


def _write_table(cfg: OcrConfig, store: Path) -> None:
    """OUT as one JSON-lines or Parquet table of every document in the store, by file name."""
    names = sorted(p.name for p in store.iterdir()
                   if p.suffix == ".json" and not p.name.startswith("."))
    columns = ("id", "split", "label", "ocr", "pages", "engine", "sha256")

    def rows() -> Iterator[dict[str, object]]:
        for name in names:
            record = json.loads((store / name).read_text(encoding="utf-8"))
            yield {c: json.dumps(record[c]) if c in ("pages", "engine") else record[c]
                   for c in columns}

    if cfg.out_format == "jsonl":
        def write_jsonl(temp: Path) -> None:
            with open(temp, "w", encoding="utf-8") as handle:
                for row in rows():
                    handle.write(json.dumps(row, ensure_ascii=False) + "\n")

        write_atomic(cfg.out, write_jsonl)
        return

    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("id", pa.string()), ("split", pa.string()), ("label", pa.int64()),
                        ("ocr", pa.string()), ("pages", pa.string()), ("engine", pa.string()),
                        ("sha256", pa.string())])

    def write_parquet(temp: Path) -> None:
        with pq.ParquetWriter(str(temp), schema) as writer:
            batch: list[dict[str, object]] = []
            for row in itertools.chain(rows(), [None]):  # type: ignore[list-item]
                if row is not None:
                    batch.append(row)
                if batch and (row is None or len(batch) >= 1024):  # flat memory
                    writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                    batch = []

    write_atomic(cfg.out, write_parquet)
