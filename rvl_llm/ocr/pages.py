"""A document's bytes -> its pages, and the page rules.

- An image file (TIFF, PNG, JPEG, ...) is one document; every frame of a multi-page TIFF is a
  page.
- A PDF is one document; a page with a text layer gives that text ("text-layer") unless
  ``--force-ocr``; otherwise it is rendered at ``--dpi`` and recognised ("ocr").
- Pages' text is stripped of trailing whitespace and joined with ``--page-separator``.

Anything unreadable raises ``BadDocument`` (one line): corrupt or empty files, unsupported kinds,
encrypted or zero-page PDFs, and pages over ``--max-pixels`` (checked from the header, before
the pixels are decoded: a decompression bomb never reaches memory).
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rvl_llm.ocr.config import OcrSettings

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
PDF_SUFFIX = ".pdf"
DOCUMENT_SUFFIXES = (*IMAGE_SUFFIXES, PDF_SUFFIX)
_EMPTY_PAGE_TREE = re.compile(rb"/Type\s*/Pages\b[^>]*/Count\s+0\b")


class BadDocument(Exception):
    """A document that cannot be read; the reason is one line."""


@dataclass(frozen=True)
class Page:
    text: str
    source: str  # "ocr", "text-layer" or "import": what this page's text came from


def join_pages(pages: list[Page], settings: OcrSettings) -> str:
    """The document's text exactly as the stage writes it into "ocr"."""
    return settings.page_separator.join(page.text for page in pages)


def image_pages(raw: bytes, suffix: str, settings: OcrSettings,
                recognise: Callable[[Any], str]) -> list[Page]:
    """Recognise every page of an image file or a PDF with ``recognise(PIL image) -> text``."""
    if not raw:
        raise BadDocument("empty file (0 bytes)")
    if suffix == PDF_SUFFIX:
        return _pdf_pages(raw, settings, recognise)
    if suffix not in IMAGE_SUFFIXES:
        raise BadDocument(f"unsupported file kind {suffix or '(no suffix)'!r} "
                          f"(images: {', '.join(IMAGE_SUFFIXES)}; or .pdf)")
    return [Page(_clean(recognise(image)), "ocr") for image in _frames(raw, settings)]


def _frames(raw: bytes, settings: OcrSettings) -> list[Any]:
    from PIL import Image, ImageSequence  # pillow: only where pages are decoded

    Image.MAX_IMAGE_PIXELS = None  # our own cap below, per frame, names the file
    try:
        image = Image.open(io.BytesIO(raw))
        frames = []
        for frame in ImageSequence.Iterator(image):
            width, height = frame.size
            if width * height > settings.max_pixels:
                raise BadDocument(f"page {len(frames) + 1} is {width}x{height} pixels, over "
                                  f"--max-pixels {settings.max_pixels} (a decompression bomb?)")
            frame.load()
            frames.append(frame.convert("L") if frame.mode not in ("L", "RGB") else frame.copy())
        return frames
    except BadDocument:
        raise
    except Exception as err:  # PIL raises many kinds for a corrupt file
        reason = f"{type(err).__name__}: {_first_line(err)}"
        raise BadDocument(f"not a readable image ({reason})") from err


def _pdf_pages(raw: bytes, settings: OcrSettings, recognise: Callable[[Any], str]) -> list[Page]:
    try:
        import pypdfium2 as pdfium  # renders pages and reads text layers; an extra
    except ImportError as err:
        raise BadDocument(f"pypdfium2 is not installed ({err}); "
                          "pip install 'rvl-llm[ocr]'") from err
    try:
        pdf = pdfium.PdfDocument(raw)
    except pdfium.PdfiumError as err:
        # pdfium's error code can be stale (a previous document's): look at the bytes too.
        if _EMPTY_PAGE_TREE.search(raw):  # pdfium refuses to open an empty page tree
            raise BadDocument("PDF with no pages") from err
        if b"/Encrypt" in raw or "password" in _first_line(err).lower():
            raise BadDocument("encrypted PDF (needs a password); decrypt it first") from err
        raise BadDocument(f"not a readable PDF ({_first_line(err)})") from err
    try:
        if len(pdf) == 0:
            raise BadDocument("PDF with no pages")
        pages = []
        for number in range(len(pdf)):
            page = pdf[number]
            if not settings.force_ocr:
                layer = page.get_textpage().get_text_bounded()
                if layer.strip():
                    pages.append(Page(_clean(layer.replace("\r\n", "\n")), "text-layer"))
                    continue
            scale = _scan_scale(page, pdfium) or settings.dpi / 72
            width, height = (round(side * scale) for side in page.get_size())
            if width * height > settings.max_pixels:
                raise BadDocument(f"page {number + 1} renders to {width}x{height} pixels at "
                                  f"{round(scale * 72)} dpi, over --max-pixels "
                                  f"{settings.max_pixels}")
            image = page.render(scale=scale, grayscale=True).to_pil()
            pages.append(Page(_clean(recognise(image)), "ocr"))
        return pages
    finally:
        pdf.close()


def _scan_scale(page: Any, pdfium: Any) -> float | None:
    """Pixels per point of a page that is one scanned image covering it: rendered at the image's
    own resolution, not --dpi (200 dpi would upsample a 150-dpi scan, and Tesseract reads the
    blurred strokes worse: CER 10% against 2% on the sample). None for any other page."""
    images = list(page.get_objects(filter=[pdfium.raw.FPDF_PAGEOBJ_IMAGE], max_depth=1))
    if len(images) != 1:
        return None
    left, bottom, right, top = images[0].get_bounds()
    page_width, page_height = page.get_size()
    if (right - left) * (top - bottom) < 0.9 * page_width * page_height:
        return None
    pixels_wide = images[0].get_px_size()[0]
    return pixels_wide / (right - left) if pixels_wide > 0 else None


def _clean(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
