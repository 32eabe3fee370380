"""The one type of the progress callback every stage takes: a function given one line of text.

A command passes ``click.echo`` to standard error; the Python API passes nothing (``quiet``).
"""

from __future__ import annotations

from collections.abc import Callable

Log = Callable[[str], None]


def quiet(_msg: str) -> None:
    """A Log that drops every line."""
