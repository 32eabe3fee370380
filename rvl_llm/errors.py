"""The one error type users see: a single line naming the file or option at fault."""

from __future__ import annotations

import click


class RvlError(click.ClickException):
    """A user-facing failure. click prints ``Error: <message>`` and exits with status 1."""

    def __init__(self, message: str) -> None:
        # Keep it one line: multi-line messages get lost in logs of multi-process launches.
        super().__init__(" ".join(message.split()))
