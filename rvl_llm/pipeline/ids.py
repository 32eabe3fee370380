"""A document's id as text, the one rule prepare's readers and predict share.

A string id is kept as it is; any other JSON value is written as its JSON text, so ``true``
stays ``true`` (not Python's ``True``) and ``{"a": 1}`` stays ``{"a": 1}``, and the id reads
back as the value the file holds. A number ``1`` and a string ``"1"`` both give ``1``: predict
counts such repeats as duplicate ids.
"""

from __future__ import annotations

import json
from typing import Any


def id_text(value: Any) -> str:
    """The id text of a JSON (or table cell) value: strings as they are, bytes decoded as files
    are, anything else as its JSON text; a value JSON cannot write (a date in a Parquet column)
    as Python writes it."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):  # a binary table column: decoded as files are
        return value.decode("utf-8", errors="replace")
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)
