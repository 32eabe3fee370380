"""rvl-llm: fine-tune LLMs to classify documents from their OCR text."""

__version__ = "0.1.0"
