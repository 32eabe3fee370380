"""The one error type users see: a single line naming the file or option at fault."""

from __future__ import annotations

import click


class RvlError(click.ClickException):
    """A user-facing failure. click prints ``Error: <message>`` and exits with status 1."""

    def __init__(self, message: str) -> None:
        # Keep it one line: multi-line messages get lost in logs of multi-process launches.
        super().__init__(" ".join(message.split()))


def write_reason(err: BaseException) -> str:
    """Why an operation failed, in a few words: the OS's reason (``No space left on device``),
    also when safetensors or torch wrap it in an error of their own; else the error's first
    line."""
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    text = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
    if "os error 28" in text or "No space left" in text or "StorageFull" in text:
        return "No space left on device"
    return f"{type(err).__name__}: {text}"
