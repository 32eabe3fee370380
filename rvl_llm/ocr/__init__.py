"""The ``ocr`` stage: scans (images, PDFs, RVL-CDIP, image tables) -> the OCR JSON documents
that prepare and predict read.

For predict on scans:

- ``ocr_file(path, settings)``: an image or PDF's text exactly as the stage writes it into
  "ocr" (so a prediction on a scan equals the prediction on its OCR JSON);
- ``find_ocr_settings(data)``: the ``OcrSettings`` an OCR output folder was made with (its
  ``ocr.manifest``), or None.
"""

from rvl_llm.ocr.config import OcrSettings
from rvl_llm.ocr.documents import find_ocr_settings, ocr_file
from rvl_llm.ocr.pages import DOCUMENT_SUFFIXES

__all__ = ["DOCUMENT_SUFFIXES", "OcrSettings", "find_ocr_settings", "ocr_file"]
