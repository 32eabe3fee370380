"""One document through an engine, the same code on every backend: read its bytes, skip it if
its output is already there for the same bytes, else recognise its pages and render its JSON.

``ocr_file`` and ``find_ocr_settings`` are what predict calls: a scan's text exactly as the
stage writes it into "ocr", so predictions on a scan equal those on its OCR JSON.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rvl_llm.errors import RvlError
from rvl_llm.ocr.config import OcrSettings
from rvl_llm.ocr.engines import Engine, make_engine
from rvl_llm.ocr.pages import BadDocument, join_pages
from rvl_llm.ocr.sources import Item

MANIFEST = "ocr.manifest"  # JSON text; not *.json, so prepare and predict never read it
MANIFEST_FORMAT = 1


@dataclass(frozen=True)
class Outcome:
    status: str  # "written", "done" (already there, same bytes) or "bad"
    name: str  # the output file name, or where a bad document is
    pages: int = 0
    text: str = ""  # the document's JSON ("written"), or why it is bad ("bad")


def process(item: Item, engine: Engine, engine_version: str, settings: OcrSettings,
            done_sha: str | None) -> Outcome:
    where = item.path or item.id
    try:
        raw = item.read()
    except OSError as err:
        return Outcome("bad", where, text=f"cannot read ({err.strerror or err})")
    sha = hashlib.sha256(raw).hexdigest()
    if sha == done_sha:
        return Outcome("done", item.name)
    try:
        pages = engine.pages(raw, item.suffix)
    except BadDocument as err:
        return Outcome("bad", where, text=str(err))
    except Exception as err:  # an engine failing on one page costs that document, not the run
        return Outcome("bad", where, text=f"the engine failed ({type(err).__name__}: {err})")
    record: dict[str, Any] = {
        "id": item.id,
        "ocr": join_pages(pages, settings),
        "split": item.split,
        "label": item.label,
        "pages": [{"page": n, "source": p.source, "chars": len(p.text)}
                  for n, p in enumerate(pages, start=1)],
        "engine": {"name": engine.name, "version": engine_version,
                   "settings": settings.to_dict()},
        "sha256": sha,
    }
    return Outcome("written", item.name, len(pages), json.dumps(record, indent=2) + "\n")


def recorded_sha(path: Path) -> str | None:
    """The source hash an earlier run recorded in ``path``, or None (absent or unreadable)."""
    try:
        value = json.loads(path.read_bytes()).get("sha256")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


_ENGINES: dict[OcrSettings, tuple[Engine, str]] = {}  # loaded once per process and settings


def loaded_engine(settings: OcrSettings) -> tuple[Engine, str]:
    if settings not in _ENGINES:
        engine = make_engine(settings)
        _ENGINES[settings] = (engine, engine.version())
    return _ENGINES[settings]


def ocr_file(path: Path | str, settings: OcrSettings | None = None) -> str:
    """The text of one image or PDF file exactly as ``rvl-llm ocr`` writes it into "ocr", with
    ``settings`` (``find_ocr_settings`` of the training data; default: the stage's defaults).
    The engine is loaded once per process and settings. Raises RvlError naming the file."""
    settings = settings or OcrSettings()
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise RvlError(f"{path}: cannot read ({err.strerror or err})") from err
    engine, _ = loaded_engine(settings)
    try:
        return join_pages(engine.pages(raw, path.suffix.lower()), settings)
    except BadDocument as err:
        raise RvlError(f"{path}: {err}") from err


def read_manifest(folder: Path) -> dict[str, Any] | None:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise RvlError(f"{path}: unreadable OCR manifest ({err}); remove it and rerun ocr") from err
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise RvlError(f"{path}: not an OCR manifest of format {MANIFEST_FORMAT}; rerun "
                       "rvl-llm ocr into a new folder")
    return data


def find_ocr_settings(data: Path | str) -> OcrSettings | None:
    """The OCR settings a data folder (an ``rvl-llm ocr`` output) was made with, or None when
    it has no OCR manifest (text that came from elsewhere)."""
    folder = Path(data)
    if not folder.is_dir():
        parts = folder.with_name(f"{folder.name}.parts")  # a jsonl/parquet output's documents
        folder = parts if parts.is_dir() else folder
    manifest = read_manifest(folder) if folder.is_dir() else None
    if manifest is None:
        return None
    return OcrSettings.from_dict(manifest["settings"], str(folder / MANIFEST))
