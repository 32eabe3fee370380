"""Prepare: OCR JSON files -> tokenised, masked, versioned Arrow shards under ``data_cache/``.

The manifest (``manifest.py``) is the one contract between prepare, train and evaluate.
"""
