"""Sample documents printed as scanned-looking pages, with the text on each page known.

``python -m rvl_llm.sample`` writes, beside the sample corpus,

* ``sample/scans/``: page images and PDFs that ``rvl-llm ocr sample/scans -o OUT`` reads.
  Labelled documents are named in the seed's layout, ``{split}_{index:04d}_{label}`` with an
  image suffix (``test_0005_5.tif``): they are the first page or two of the test documents of
  the same name in ``sample/data/``. Unlabelled ones are named as in ``sample/unlabelled/``
  (``scan-01.pdf`` prints ``scan-01.json``). Among them: a multi-page TIFF, an image-only PDF
  (written by Pillow), a PDF whose first page has a real text layer and whose second is a scan
  (written by matplotlib, whose PDF backend writes text as text), PNGs and JPEGs.
* ``sample/scans-truth/``: ``NAME.txt`` per scan (``test_0005_5.txt``), the text drawn on its
  pages, lines joined by newlines and pages by a form feed; ``index.json`` lists the scans
  (file, split, label, pages, text-layer pages) and is written last, so a folder without it is
  an unfinished build. The truth lives outside ``scans/`` so the OCR stage sees only scans.

Each page is US Letter at 150 dpi, the text set in DejaVu Sans (shipped with matplotlib) and
wrapped to the margins, then turned by up to a degree, blurred and speckled: a clean office
scan. Everything is drawn from seeded generators, so a seed gives the same bytes on every run.

:func:`character_error_rate` compares an OCR result with the known text.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rvl_llm.atomic import discard_staging_dir, make_staging_dir, replace_dir, write_json_atomic
from rvl_llm.labels import RVL_CDIP_CLASSES
from rvl_llm.sample.corpus import corpus_documents, unlabelled_texts

SCANS_FORMAT = 1  # bump when a change alters the bytes written
SCANS_DIR = "scans"
TRUTH_DIR = "scans-truth"
INDEX_NAME = "index.json"  # in TRUTH_DIR; written last: the build's completion stamp
PAGE_SEPARATOR = "\f"  # between the pages of one truth file

DPI = 150
PAGE_SIZE = (1275, 1650)  # US Letter at DPI, in pixels
MARGIN = 110  # pixels on every side
FONT_PX = 20  # about 10 pt at DPI
LINE_PX = 29  # baseline to baseline
FONT_FILE = "DejaVuSans.ttf"
FONT_FAMILY = "DejaVu Sans"  # the same font, as matplotlib names it
MAX_ROTATION_DEG = 1.0  # each page is turned by a uniform draw in +-this
BLUR_RADIUS = 0.7  # Gaussian blur, pixels: a scanner's soft focus
SPECKLE_RATE = 0.003  # share of pixels turned into dark specks
GRAIN_SIGMA = 6.0  # grey-level noise of the paper
WHITE_POINT = 225  # lighter is paper: scanners clip it to white (and PNGs stay small)
JPEG_QUALITY = 85


@dataclass(frozen=True)
class ScanSpec:
    """One scan to write: which document, in which file form."""

    name: str  # the stem: "test_0005_5" (split, index, label) or "scan-01" (unlabelled)
    suffix: str  # ".png", ".jpg", ".tif" or ".pdf"
    text: str  # the document's whole text; as much as fits on max_pages is printed
    max_pages: int = 1
    text_layer_pages: tuple[int, ...] = ()  # PDF pages (from 0) written as real text
    split: str | None = None
    label: int | None = None

    @property
    def file_name(self) -> str:
        return self.name + self.suffix


@dataclass(frozen=True)
class RenderedScan:
    spec: ScanSpec
    pages: list[Any]  # PIL images, mode "L", one a page (text-layer pages too, as an image)
    page_lines: list[list[str]]  # the lines drawn on each page

    @property
    def truth(self) -> str:
        return PAGE_SEPARATOR.join("\n".join(lines) for lines in self.page_lines)


# Which test documents are printed, and how: (index in the test split, suffix, max pages).
# The index is also the label (the test split cycles through the classes).
_LABELLED: tuple[tuple[int, str, int], ...] = (
    (0, ".png", 1),  # letter
    (2, ".png", 1),  # email
    (5, ".tif", 2),  # scientific report: a multi-page TIFF
    (10, ".jpg", 1),  # budget
    (13, ".pdf", 2),  # questionnaire: an image-only PDF
    (15, ".png", 1),  # memo
)
# The unlabelled documents of sample/unlabelled/scan-NN.json: (number, suffix, max pages,
# text-layer pages). scan-01 is long enough for two pages: text layer first, then a scan.
_UNLABELLED: tuple[tuple[int, str, int, tuple[int, ...]], ...] = (
    (1, ".pdf", 2, (0,)),
    (2, ".png", 1, ()),
    (3, ".jpg", 1, ()),
    (4, ".tif", 1, ()),
)


def scan_specs(*, seed: int = 0) -> list[ScanSpec]:
    """The scans of the sample world, labelled ones first, each by name."""
    needed = max(index for index, _, _ in _LABELLED) // len(RVL_CDIP_CLASSES) + 1
    tests = {d.index: d for d in corpus_documents(per_class={"test": needed}, seed=seed)}
    specs = [
        ScanSpec(
            f"test_{index:04d}_{tests[index].label}", suffix, tests[index].text, pages,
            split="test", label=tests[index].label,
        )
        for index, suffix, pages in _LABELLED
    ]
    texts = unlabelled_texts(seed=seed)
    specs += [
        ScanSpec(f"scan-{number:02d}", suffix, texts[number - 1], pages, layer)
        for number, suffix, pages, layer in _UNLABELLED
    ]
    return specs


# --------------------------------------------------------------------------------------------
# Layout and rendering
# --------------------------------------------------------------------------------------------


def font_path() -> Path:
    """DejaVu Sans as matplotlib ships it: no font needs installing."""
    import matplotlib  # lazily: only rendering needs it

    return Path(matplotlib.get_data_path(), "fonts", "ttf", FONT_FILE)


def _font() -> Any:
    from PIL import ImageFont

    return ImageFont.truetype(str(font_path()), FONT_PX)


def lines_per_page() -> int:
    return (PAGE_SIZE[1] - 2 * MARGIN) // LINE_PX


def layout_pages(text: str, font: Any, max_pages: int) -> list[list[str]]:
    """The text wrapped at word boundaries to the page width and cut into pages of
    :func:`lines_per_page` lines, at most ``max_pages`` (the rest of the text is not printed).
    Runs of spaces become one; a blank line stays a blank line; a page never starts blank."""
    width = PAGE_SIZE[0] - 2 * MARGIN
    lines: list[str] = []
    for raw in text.split("\n"):
        current = ""
        for word in raw.split():
            candidate = f"{current} {word}" if current else word
            if current and font.getlength(candidate) > width:
                lines.append(current)
                current = word
            else:
                current = candidate  # a single word wider than the page is left to overflow
        lines.append(current)
    pages: list[list[str]] = []
    per_page = lines_per_page()
    for line in lines:
        if not pages or len(pages[-1]) == per_page:
            if len(pages) == max_pages:
                break
            if not line:
                continue  # a page never starts with a blank line
            pages.append([])
        pages[-1].append(line)
    for page in pages:
        while page and not page[-1]:
            page.pop()
    return pages or [[]]  # an empty document is one blank page


def _page_rng(seed: int, name: str, page: int) -> random.Random:
    return random.Random(f"rvl-llm-sample/{seed}/scans/{name}/{page}")


def draw_page(lines: Sequence[str], font: Any, ink: int) -> Any:
    """A clean page: the lines in ``ink`` (a grey level) on white."""
    from PIL import Image, ImageDraw

    image = Image.new("L", PAGE_SIZE, 255)
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((MARGIN, MARGIN + i * LINE_PX), line, font=font, fill=ink)
    return image


def degrade(image: Any, rng: random.Random) -> Any:
    """A scanned look: a slight turn, a soft blur, paper grain and dark specks."""
    from PIL import Image, ImageFilter

    angle = rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG)
    image = image.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=255)
    image = image.filter(ImageFilter.GaussianBlur(BLUR_RADIUS))
    noise = np.random.default_rng(rng.getrandbits(64))
    pixels = np.asarray(image, dtype=np.float32)
    pixels = pixels + noise.normal(0.0, GRAIN_SIGMA, pixels.shape)
    pixels[pixels > WHITE_POINT] = 255
    specks = noise.random(pixels.shape) < SPECKLE_RATE
    pixels[specks] = noise.integers(0, 120, int(specks.sum()))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="L")


def render_scan(spec: ScanSpec, *, seed: int = 0, font: Any = None) -> RenderedScan:
    """The pages of one scan as images, and the lines drawn on each (deterministic)."""
    font = font or _font()
    page_lines = layout_pages(spec.text, font, spec.max_pages)
    pages = []
    for number, lines in enumerate(page_lines):
        rng = _page_rng(seed, spec.name, number)
        ink = rng.randint(10, 60)
        clean = draw_page(lines, font, ink)
        # A text-layer page is not scanned: its image is only what it looks like.
        pages.append(clean if number in spec.text_layer_pages else degrade(clean, rng))
    return RenderedScan(spec, pages, page_lines)


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def _save_pdf_with_text_layer(scan: RenderedScan, path: Path) -> None:
    """A PDF through matplotlib: text-layer pages as real text (TrueType, so it extracts),
    the others as the scanned image, full page."""
    import matplotlib
    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.figure import Figure

    width, height = PAGE_SIZE
    point = FONT_PX * 72 / DPI
    # No dates: the same seed gives the same bytes.
    metadata = {"Creator": "rvl-llm sample", "Producer": None, "CreationDate": None}
    with matplotlib.rc_context({"pdf.fonttype": 42}), PdfPages(path, metadata=metadata) as pdf:
        for number, (image, lines) in enumerate(zip(scan.pages, scan.page_lines, strict=True)):
            figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
            if number in scan.spec.text_layer_pages:
                for i, line in enumerate(lines):
                    top = MARGIN + i * LINE_PX
                    figure.text(
                        MARGIN / width, 1 - top / height, line, fontsize=point,
                        family=FONT_FAMILY, va="top", ha="left",
                    )
            else:
                axes = figure.add_axes((0, 0, 1, 1))
                axes.set_axis_off()
                axes.imshow(
                    np.asarray(image), cmap="gray", vmin=0, vmax=255, interpolation="none",
                    aspect="auto",
                )
            pdf.savefig(figure)


def save_scan(scan: RenderedScan, path: Path) -> None:
    """Write a rendered scan in the form its suffix names."""
    pages, suffix = scan.pages, scan.spec.suffix
    if suffix in (".png", ".jpg") and len(pages) > 1:
        raise ValueError(f"{scan.spec.file_name}: a {suffix} holds one page, not {len(pages)}")
    if suffix == ".pdf" and scan.spec.text_layer_pages:
        _save_pdf_with_text_layer(scan, path)
    elif suffix == ".pdf":  # image-only, as a scanner writes it
        # No dates: the same seed gives the same bytes.
        pages[0].save(
            path, "PDF", save_all=True, append_images=pages[1:], resolution=DPI,
            creationDate=None, modDate=None,
        )
    elif suffix == ".tif":
        pages[0].save(
            path, "TIFF", save_all=True, append_images=pages[1:], compression="tiff_deflate",
            dpi=(DPI, DPI),
        )
    elif suffix == ".jpg":
        pages[0].save(path, "JPEG", quality=JPEG_QUALITY, dpi=(DPI, DPI))
    elif suffix == ".png":
        pages[0].save(path, "PNG", dpi=(DPI, DPI))
    else:
        raise ValueError(f"{scan.spec.file_name}: no writer for {suffix!r}")


def write_scans(scans_dir: Path, truth_dir: Path, *, seed: int = 0) -> list[dict[str, Any]]:
    """Render every scan into ``scans_dir`` and its known text into ``truth_dir``; return the
    index entries (index.json is not written here)."""
    scans_dir.mkdir(parents=True, exist_ok=True)
    truth_dir.mkdir(parents=True, exist_ok=True)
    font = _font()
    entries = []
    for spec in scan_specs(seed=seed):
        scan = render_scan(spec, seed=seed, font=font)
        path = scans_dir / spec.file_name
        save_scan(scan, path)
        (truth_dir / f"{spec.name}.txt").write_text(scan.truth, encoding="utf-8")
        entries.append(
            {
                "file": spec.file_name,
                "truth": f"{spec.name}.txt",
                "split": spec.split,
                "label": spec.label,
                "class": None if spec.label is None else RVL_CDIP_CLASSES[spec.label],
                "pages": len(scan.pages),
                "text_layer_pages": list(spec.text_layer_pages),
                "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            }
        )
    return entries


def read_index(root: Path) -> dict[str, Any] | None:
    """The scans' index.json of a sample world, or None when there is none (or unreadable)."""
    try:
        index = json.loads((Path(root) / TRUTH_DIR / INDEX_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return index if isinstance(index, dict) else None


def scans_are_complete(root: Path, *, seed: int = 0) -> bool:
    """Whether ``root`` holds finished scans of the current format and this seed."""
    index = read_index(root)
    if index is None or (index.get("format"), index.get("seed")) != (SCANS_FORMAT, seed):
        return False
    return all((Path(root) / SCANS_DIR / entry["file"]).is_file() for entry in index["scans"])


def build_scans(root: Path, *, seed: int = 0, force: bool = False) -> bool:
    """Write ``root/scans/`` and ``root/scans-truth/``; return False when they were complete
    already (and not ``force``d). Built in staging folders and moved into place, the index
    (the stamp) last: an interrupted build leaves no folder that looks finished."""
    root = Path(root)
    if not force and scans_are_complete(root, seed=seed):
        return False
    started = time.monotonic()
    scans_target, truth_target = root / SCANS_DIR, root / TRUTH_DIR
    scans_staging, scans_made = make_staging_dir(scans_target)
    truth_staging, truth_made = make_staging_dir(truth_target)
    try:
        entries = write_scans(scans_staging, truth_staging, seed=seed)
        index = {
            "format": SCANS_FORMAT,
            "seed": seed,
            "dpi": DPI,
            "page_separator": PAGE_SEPARATOR,
            "render_seconds": round(time.monotonic() - started, 2),
            "scans": entries,
        }
        (truth_target / INDEX_NAME).unlink(missing_ok=True)  # the old build is no longer whole
        replace_dir(scans_staging, scans_target)
        write_json_atomic(truth_staging / INDEX_NAME, index)
        replace_dir(truth_staging, truth_target)
    except BaseException:
        discard_staging_dir(scans_staging, scans_made)
        discard_staging_dir(truth_staging, truth_made)
        raise
    return True


def read_truth(root: Path, name: str) -> list[str]:
    """The known text of scan ``name`` (a stem such as ``test_0005_5``), one string a page."""
    return (Path(root) / TRUTH_DIR / f"{name}.txt").read_text(encoding="utf-8").split(
        PAGE_SEPARATOR
    )


# --------------------------------------------------------------------------------------------
# Character error rate
# --------------------------------------------------------------------------------------------


def normalize_whitespace(text: str) -> str:
    """Runs of whitespace (line breaks and page breaks too) as one space, none at the ends:
    OCR engines differ in how they lay out lines, not in what they read."""
    return " ".join(text.split())


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions, each 1).

    One row of the dynamic programme per character of the longer string, vectorised over the
    shorter: the insertion chain ``cur[j] = min(cur[j], cur[j-1] + 1)`` is a running minimum
    of ``cur[j] - j``. A page (3,000 characters) takes about 50 ms.
    """
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return len(a)
    codes = np.frombuffer(b.encode("utf-32-le"), dtype=np.uint32)
    offsets = np.arange(len(b) + 1)
    previous = offsets
    current = np.empty_like(offsets)
    for i, char in enumerate(a, start=1):
        current[0] = i  # deleting the first i characters of a
        np.minimum(previous[1:] + 1, previous[:-1] + (codes != ord(char)), out=current[1:])
        previous = np.minimum.accumulate(current - offsets) + offsets  # a new array
    return int(previous[-1])


def character_error_rate(truth: str, hypothesis: str) -> float:
    """Edits to turn the hypothesis into the truth, per character of the truth, whitespace
    normalised in both (:func:`normalize_whitespace`). An empty truth: 0.0 if the hypothesis is
    empty too, else 1.0."""
    truth, hypothesis = normalize_whitespace(truth), normalize_whitespace(hypothesis)
    if not truth:
        return 0.0 if not hypothesis else 1.0
    return edit_distance(truth, hypothesis) / len(truth)
