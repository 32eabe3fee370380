"""``rvl-llm report OUT_DIR``: every eval under OUT_DIR in one table and one plot.

Reads ``OUT_DIR/*-max-len/*/metrics.json`` and writes ``report.md``, ``report.csv`` and
``accuracy_vs_max_len.png`` (one line per run; zero-shot baselines dashed) into OUT_DIR; returns
the markdown table. The ``kind`` column tells a zero-shot baseline from the trained runs beside it;
``ece`` is the eval's expected calibration error; an eval over several test sets (``--test-sets``)
adds the mean ± sample standard deviation of their accuracy and macro-F1, and the number of sets.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

from rvl_llm.atomic import write_text_atomic
from rvl_llm.errors import RvlError
from rvl_llm.evaluate.outputs import METRICS_NAME, new_plot, plus_minus, save_png
from rvl_llm.logs import Log, quiet

REPORT_MD = "report.md"
REPORT_CSV = "report.csv"
REPORT_PNG = "accuracy_vs_max_len.png"
COLUMNS = ("run", "max_len", "accuracy", "macro_f1", "n", "kind", "ece")
SET_COLUMNS = ("test_sets", "accuracy_mean", "accuracy_std", "macro_f1_mean", "macro_f1_std")
ZERO_SHOT = "zero-shot"  # the kind of an eval of the untrained model
TRAINED = "trained"  # the kind of a trained eval whose record names no trainable mode


@dataclass(frozen=True)
class Row:
    run: str  # the eval's name (run name + checkpoint/split/decode when not the default)
    max_len: int
    accuracy: float
    macro_f1: float
    n: int
    kind: str  # "zero-shot", or the trainable mode of the run (full, lora, qlora, classifier)
    ece: float | None = None  # expected calibration error; None for generations
    # --test-sets: (sets, accuracy mean, its std, macro-F1 mean, its std); None without
    sets: tuple[int, float, float | None, float, float | None] | None = None


def collect(out_dir: Path) -> list[Row]:
    """One row per readable eval, sorted by run then max-len."""
    return gather(out_dir)[0]


def gather(out_dir: Path) -> tuple[list[Row], list[str]]:
    """One row per eval, sorted by run then max-len, and a line per metrics.json left out
    (unreadable, or values no eval writes: a report must not show them as results)."""
    rows, skipped = [], []
    for path in sorted(Path(out_dir).glob(f"*-max-len/*/{METRICS_NAME}")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            row = Row(str(record["name"]), int(record["max_len"]), float(record["accuracy"]),
                      float(record["macro_f1"]), int(record["n"]), kind(record),
                      _optional(record.get("ece")), test_sets(record.get("test_sets")))
            problem = row_problem(record)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            problem = f"not an eval's metrics.json ({type(err).__name__}: {err})"
        if problem:
            skipped.append(f"{path}: {problem}")
        else:
            rows.append(row)
    return sorted(rows, key=lambda r: (r.run, r.max_len)), skipped


def _optional(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def test_sets(block: dict | None) -> tuple[int, float, float | None, float, float | None] | None:
    """The spread of an eval over several test sets, or None."""
    if block is None:
        return None
    return (len(block["sets"]), float(block["accuracy_mean"]),
            _optional(block["accuracy_std"]), float(block["macro_f1_mean"]),
            _optional(block["macro_f1_std"]))


def row_problem(record: dict) -> str | None:
    """What makes a record's numbers impossible for an eval, or None. The raw JSON values are
    checked: int() would turn n 2.5 into 2 and a bool into 1."""
    for name in ("accuracy", "macro_f1"):
        value = record[name]
        if (isinstance(value, bool) or not isinstance(value, int | float)
                or not 0.0 <= value <= 1.0):  # NaN fails the range too
            return f"{name} {value!r} is not a share between 0 and 1"
    for name in ("n", "max_len"):
        value, least = record[name], 0 if name == "n" else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            return f"{name} {value!r} is not a whole number of at least {least}"
    return None


def kind(record: dict) -> str:
    """"zero-shot" or the run's trainable mode; records written before zero-shot evals existed
    are trained evals (``zero_shot`` absent), and older ones may name no mode."""
    if record.get("zero_shot"):
        return ZERO_SHOT
    recipe = record.get("recipe")
    mode = recipe.get("trainable") if isinstance(recipe, dict) else None
    return str(mode) if mode else TRAINED


def markdown(rows: list[Row]) -> str:
    """The table; columns on several test sets only when some eval has them."""
    with_sets = any(r.sets for r in rows)
    header = [*COLUMNS, *(("test sets", "accuracy (mean ± std)", "macro-F1 (mean ± std)")
                          if with_sets else ())]
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] + ["---:"] * 4 + ["---"] + ["---:"] * (len(header) - 6))
             + "|"]
    for r in rows:
        cells = [r.run, str(r.max_len), f"{r.accuracy:.4f}", f"{r.macro_f1:.4f}", str(r.n),
                 r.kind, "" if r.ece is None else f"{r.ece:.4f}"]
        if with_sets:
            cells += (["", "", ""] if r.sets is None else
                      [str(r.sets[0]), plus_minus(r.sets[1], r.sets[2]),
                       plus_minus(r.sets[3], r.sets[4])])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def to_csv(rows: list[Row]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*COLUMNS, *SET_COLUMNS])
    for r in rows:
        sets = ["" if v is None else f"{v:.6f}" if isinstance(v, float) else str(v)
                for v in (r.sets or (None,) * len(SET_COLUMNS))]
        writer.writerow([r.run, r.max_len, f"{r.accuracy:.6f}", f"{r.macro_f1:.6f}", r.n,
                         r.kind, "" if r.ece is None else f"{r.ece:.6f}", *sets])
    return buffer.getvalue()


def plot(rows: list[Row], path: Path) -> None:
    fig, ax = new_plot(7, 4.5)
    for run in sorted({r.run for r in rows}):
        points = [r for r in rows if r.run == run]
        ax.plot([r.max_len for r in points], [r.accuracy for r in points], marker="o", label=run,
                linestyle="--" if points[0].kind == ZERO_SHOT else "-")
    lengths = sorted({r.max_len for r in rows})
    ax.set_xscale("log", base=2)  # max-lens grow in doublings (256, 512, 1024, ...)
    ax.set_xticks(lengths, [str(n) for n in lengths])
    ax.minorticks_off()
    ax.set_xlabel("max-len (tokens)")
    ax.set_ylabel("accuracy")
    ax.set_title("accuracy vs max-len")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_png(fig, path)


def run_report(out_dir: Path, log: Log = quiet) -> str:
    """The markdown table; each metrics.json left out is named through ``log``, then counted."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise RvlError(f"{out_dir}: no such folder (the -o OUT_DIR of `rvl-llm eval`)")
    rows, skipped = gather(out_dir)
    for line in skipped:
        log(f"skipped {line}")
    if skipped:
        log(f"report: skipped {len(skipped)} {METRICS_NAME} file(s)")
    if not rows:
        found = f" ({len(skipped)} unusable)" if skipped else ""
        raise RvlError(f"{out_dir}: no usable */{METRICS_NAME} under *-max-len/ folders{found}; "
                       f"run `rvl-llm eval -o {out_dir}` first")
    table = markdown(rows)
    try:
        write_text_atomic(out_dir / REPORT_MD, table)
        write_text_atomic(out_dir / REPORT_CSV, to_csv(rows))
        plot(rows, out_dir / REPORT_PNG)
    except OSError as err:
        raise RvlError(f"{out_dir}: cannot write the report ({err.strerror or err})") from err
    return table
