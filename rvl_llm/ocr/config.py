"""The ocr stage's settings, once: ``OcrSettings`` (what decides a document's text, recorded in
the output's manifest and in every document) and ``OcrConfig`` (where from, where to, how fast).

A changed ``OcrSettings`` field into the same output folder is refused, naming its flag; the
``OcrConfig`` fields (jobs, backend, ...) change nothing in the output and may differ per run.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import click

from rvl_llm.errors import RvlError
from rvl_llm.options import cli

ENGINES = ("tesseract", "rapidocr", "textract", "iit-cdip")
IMPORTERS = {"textract": ".json", "iit-cdip": ".xml"}  # engines that read OCR users already have
SOURCE_FORMATS = ("folder", "rvl-cdip", "jsonl", "csv", "parquet", "datasets")
OUTPUT_FORMATS = ("folder", "jsonl", "parquet")
BACKENDS = ("local", "ray")


@dataclass(frozen=True)
class OcrSettings:
    """Everything that decides a document's text. Recorded in the manifest; a rerun into the same
    output must match it field for field."""

    engine: str = field(default="tesseract", metadata=cli(
        "--engine", type=click.Choice(ENGINES),
        help="tesseract (default), rapidocr (extra 'rapidocr'), or an importer of OCR you "
        "already have: textract (Textract JSON), iit-cdip (IIT-CDIP XML)."))
    lang: str = field(default="eng", metadata=cli(
        "--lang", help="Tesseract language(s), e.g. eng or eng+deu (their tessdata must exist)."))
    psm: int = field(default=3, metadata=cli(
        "--psm", help="Tesseract page segmentation mode (3: fully automatic)."))
    dpi: int = field(default=200, metadata=cli(
        "--dpi", help="Resolution PDF pages without a text layer are rendered at for OCR (a "
        "page that is one scanned image: at the image's own)."))
    force_ocr: bool = field(default=False, metadata=cli(
        "--force-ocr", help="OCR every PDF page, even one with a text layer."))
    page_separator: str = field(default="\f", metadata=cli(
        "--page-separator", help="Joins the pages' text of a multi-page document."))
    max_pixels: int = field(default=100_000_000, metadata=cli(
        "--max-pixels", help="Largest page (width x height) accepted: a guard against "
        "decompression bombs."))

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise RvlError(f"--engine {self.engine}: choose from {', '.join(ENGINES)}")
        for flag, value in (("--dpi", self.dpi), ("--max-pixels", self.max_pixels)):
            if value < 1:
                raise RvlError(f"{flag} {value}: must be a positive number")
        if not 0 <= self.psm <= 13:
            raise RvlError(f"--psm {self.psm}: Tesseract's modes are 0..13")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str) -> OcrSettings:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise RvlError(f"{where}: unknown OCR settings {', '.join(unknown)} (made by a newer "
                           "rvl-llm? run ocr again into a new folder)")
        return cls(**data)


def flag_of(name: str) -> str:
    """The command-line flag of an OcrSettings field, for messages."""
    for f in fields(OcrSettings):
        if f.name == name:
            return f.metadata["cli"][0][0]
    return name


@dataclass(frozen=True)
class OcrConfig:
    source: Path  # SOURCE: a folder, an RVL-CDIP root, a table file, a dataset, or hf:NAME
    out: Path = field(metadata=cli(
        "-o", "--out", help="Output: a folder of OCR JSON files (what prepare and predict read); "
        "with --format jsonl or parquet, that file."))
    settings: OcrSettings = OcrSettings()
    source_format: str | None = field(default=None, metadata=cli(
        "--source-format", type=click.Choice(SOURCE_FORMATS),
        help="What SOURCE is [guessed: rvl-cdip when it holds labels/*.txt]."))
    image_column: str = field(default="image", metadata=cli(
        "--image-column", help="Tables and datasets: the image column (bytes, a path, or an "
        "image feature)."))
    label_column: str = field(default="label", metadata=cli(
        "--label-column", help="Tables and datasets: the label column [none: unlabelled]."))
    id_column: str = field(default="id", metadata=cli(
        "--id-column", help="Tables and datasets: the id column [else the image path, else "
        "the row number]."))
    labels_file: Path | None = field(default=None, metadata=cli(
        "--labels", help="Label names, one a line, in class-index order [RVL-CDIP's 16]."))
    out_format: str = field(default="folder", metadata=cli(
        "--format", type=click.Choice(OUTPUT_FORMATS),
        help="folder: one JSON per document; jsonl or parquet: one table (its documents are "
        "kept in OUT.parts/ to resume)."))
    jobs: int | None = field(default=None, metadata=cli(
        "-j", "--jobs", help="Worker processes (local) or actors (ray) [the cores]."))
    backend: str = field(default="local", metadata=cli(
        "--backend", type=click.Choice(BACKENDS),
        help="local: a process pool; ray: Ray Data on a cluster (extra 'ray')."))
    ray_address: str | None = field(default=None, metadata=cli(
        "--ray-address", help="Ray cluster to attach to [RAY_ADDRESS, else a local instance]."))
    skip_bad_files: bool = field(default=False, metadata=cli(
        "--skip-bad-files", help="Skip bad inputs (each named, with counts) and exit 0."))
    progress: bool | None = field(default=None, metadata=cli(
        "--progress/--no-progress", help="Progress bar [on a terminal]."))

    def __post_init__(self) -> None:
        if self.jobs is not None and self.jobs < 1:
            raise RvlError(f"-j {self.jobs}: must be at least 1")
        if self.backend == "local" and self.ray_address is not None:
            raise RvlError("--ray-address: applies to --backend ray only")

    def workers(self) -> int:
        return self.jobs or len(os.sched_getaffinity(0))
