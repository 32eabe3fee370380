"""rvl-llm: fine-tune LLMs to classify documents from their OCR text.

``from rvl_llm import Classifier`` gives the Python API of ``rvl-llm predict``; it is imported on
first use, so importing rvl_llm (and the CLI's ``--help``) loads no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Classifier", "Prediction", "__version__"]

if TYPE_CHECKING:
    from rvl_llm.predict.classifier import Classifier, Prediction


def __getattr__(name: str) -> Any:
    if name in ("Classifier", "Prediction"):
        from rvl_llm.predict import classifier

        return getattr(classifier, name)
    raise AttributeError(f"module 'rvl_llm' has no attribute {name!r}")
