"""Class weights for the loss (``--class-weights balanced|FILE``): pure, no torch.

``balanced`` is scikit-learn's rule over the rows the loss sees (the train split's class counts
in the manifest; windows, under ``--truncation chunks``): ``rows / (classes present * rows of
the class)``, so the mean weight over the training rows is 1 and the loss keeps its scale. A
class with no train rows gets 0 (no row carries it). FILE gives one weight per class, as
``class name: weight`` lines (``#`` comments) or a JSON object; every class must be named.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from rvl_llm.errors import RvlError

BALANCED = "balanced"


def balanced_weights(counts: Sequence[int]) -> tuple[float, ...]:
    present = [c for c in counts if c > 0]
    if not present:
        raise RvlError("--class-weights balanced: the train split has no rows")
    total = sum(present)
    return tuple(total / (len(present) * c) if c > 0 else 0.0 for c in counts)


def read_weights_file(path: Path, labels: Sequence[str]) -> tuple[float, ...]:
    """One weight per class of ``labels`` from ``path``; the error names the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise RvlError(f"--class-weights {path}: cannot read it ({err.strerror or err})") from err
    given = _parse(path, text)
    unknown = [name for name in given if name not in labels]
    if unknown:
        raise RvlError(f"--class-weights {path}: {unknown[0]!r} is not a class of the label set "
                       f"({', '.join(labels[:4])}, ...)")
    missing = [name for name in labels if name not in given]
    if missing:
        raise RvlError(f"--class-weights {path}: no weight for class {missing[0]!r} "
                       "(name every class)")
    return tuple(given[name] for name in labels)


def _parse(path: Path, text: str) -> dict[str, float]:
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as err:
            raise RvlError(f"--class-weights {path}: not valid JSON ({err})") from err
        return {str(k): _weight(path, str(k), v) for k, v in data.items()}
    given: dict[str, float] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, colon, value = line.rpartition(":")
        if not colon:
            raise RvlError(f"--class-weights {path}:{number}: expected 'class name: weight'")
        name = name.strip()
        if name in given:
            raise RvlError(f"--class-weights {path}:{number}: class {name!r} given twice")
        given[name] = _weight(path, f"{name} (line {number})", value.strip())
    return given


def _weight(path: Path, where: str, value: object) -> float:
    try:
        weight = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        weight = math.nan
    if isinstance(value, bool) or not math.isfinite(weight) or weight < 0:
        raise RvlError(f"--class-weights {path}: {where}: {value!r} is not a weight "
                       "(a number, 0 or more)")
    return weight


def check_weights_spec(spec: str | None) -> None:
    """What can be checked before anything is written: a weights file is readable (its
    classes are checked against the label set once prepare has resolved it)."""
    if spec is not None and spec != BALANCED and not Path(spec).is_file():
        raise RvlError(f"--class-weights {spec}: no such file (give balanced, or a file of "
                       "'class name: weight' lines)")


def resolve_class_weights(
    spec: str | None, labels: Sequence[str], counts: Mapping[str, int]
) -> tuple[float, ...] | None:
    """The weights ``spec`` (None, ``balanced`` or a file) gives, given the train split's rows
    per class; None: unweighted."""
    if spec is None:
        return None
    if spec == BALANCED:
        return balanced_weights([counts.get(name, 0) for name in labels])
    return read_weights_file(Path(spec), labels)
