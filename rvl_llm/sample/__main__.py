"""``python -m rvl_llm.sample [--out sample] [--force]``: build the sample world, or skip it."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from rvl_llm.errors import RvlError
from rvl_llm.sample.models import (
    FORMAT_VERSION,
    LLAMA3_DIR,
    MISTRAL_DIR,
    SEED,
    build_sample,
    read_stamp,
    sample_is_complete,
)
from rvl_llm.sample.scans import SCANS_DIR, TRUTH_DIR, build_scans, read_index
from rvl_llm.sample.smollm2 import SMOLLM2_DIR


def _describe(root: Path) -> None:
    stamp = read_stamp(root) or {}
    documents = stamp.get("documents", {})
    listed = ", ".join(f"{split} {count}" for split, count in documents.items())
    print(f"  {root / 'data'}: {sum(documents.values())} documents ({listed})")
    for name, rows in stamp.get("tables", {}).items():
        print(f"  {root / name}: the same {rows} documents as one table")
    print(f"  {root / 'unlabelled'}: {stamp.get('unlabelled', 0)} documents to label")
    index = read_index(root) or {}
    scans = index.get("scans", [])
    pages = sum(entry["pages"] for entry in scans)
    print(f"  {root / SCANS_DIR}: {len(scans)} scanned document(s), {pages} pages "
          f"(their text in {root / TRUTH_DIR})")
    for name in (MISTRAL_DIR, LLAMA3_DIR, SMOLLM2_DIR):
        folder = root / "models" / name
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        print(f"  {folder}: {size / 1e6:.1f} MB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rvl_llm.sample",
        description="Build the sample world: a synthetic RVL-CDIP-like corpus (data/, one OCR "
        "JSON file per document, and the same documents as data.jsonl, labels as class names, "
        "and data.parquet, labels as class indices), documents to label (unlabelled/) and two "
        "tiny models with the real Mistral-7B-v0.1 and Llama 3 tokenizers, and some documents "
        "printed as scanned pages (scans/, their text in scans-truth/) (offline, "
        "deterministic).",
    )
    parser.add_argument("--out", type=Path, default=Path("sample"), help="folder (default: sample)")
    parser.add_argument("--force", action="store_true", help="rebuild even if already complete")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before huggingface_hub is imported

    root: Path = args.out
    if not args.force and sample_is_complete(root):
        print(f"sample world in {root} is complete (format {FORMAT_VERSION}): skipped")
        # A world built before the scans existed gets them; a complete one is left alone.
        started = time.monotonic()
        if build_scans(root, seed=SEED):
            print(f"rendered the scans in {root / 'scans'} in {time.monotonic() - started:.1f}s")
        _describe(root)
        return 0

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    print(f"building the sample world in {root} ...", flush=True)
    started = time.monotonic()
    try:
        build_sample(root, force=args.force)
    except RvlError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"built the sample world in {root} in {time.monotonic() - started:.1f}s")
    _describe(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
