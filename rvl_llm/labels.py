"""Label sets: RVL-CDIP's 16 classes by default, or one name a line from a file."""

from __future__ import annotations

from pathlib import Path

from rvl_llm.errors import RvlError

RVL_CDIP_CLASSES: tuple[str, ...] = (
    "letter",
    "form",
    "email",
    "handwritten",
    "advertisement",
    "scientific report",
    "scientific publication",
    "specification",
    "file folder",
    "news article",
    "budget",
    "invoice",
    "presentation",
    "questionnaire",
    "resume",
    "memo",
)


def load_labels(path: Path | None) -> tuple[str, ...]:
    """The label names in class-index order: RVL-CDIP's when ``path`` is None."""
    if path is None:
        return RVL_CDIP_CLASSES
    try:
        # rstrip: a trailing newline is not an empty label
        lines = Path(path).read_text(encoding="utf-8").rstrip().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise RvlError(f"--labels {path}: cannot read the labels file ({err})") from err
    if not lines:
        raise RvlError(f"--labels {path}: the labels file is empty")
    seen: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        name = line.strip()
        if not name:
            raise RvlError(f"--labels {path}: line {number} is an empty label name")
        if name in seen:
            raise RvlError(
                f"--labels {path}: line {number} repeats the label {name!r} of line {seen[name]}"
            )
        seen[name] = number
    return tuple(seen)
