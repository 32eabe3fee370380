"""Click commands of the eval stage: ``eval`` and ``report``.

Thin: flags -> EvalConfig -> run_eval. Only click is imported at load time (``--help`` is instant).
"""

from __future__ import annotations

from pathlib import Path

import click

from rvl_llm.config_file import config_file_option
from rvl_llm.errors import RvlError
from rvl_llm.evaluate.config import ZERO_SHOT_FIELDS, EvalConfig
from rvl_llm.options import click_options
from rvl_llm.pipeline.config import PrepareConfig


@click.command("eval")
@config_file_option
@click_options(EvalConfig)
@click_options(PrepareConfig, only=ZERO_SHOT_FIELDS, optional=True)
# The shell expands `--test-sets splits/test_*.txt` into one option value and more words.
@click.argument("more_test_sets", nargs=-1, type=click.Path(path_type=Path), metavar="")
def eval_command(more_test_sets: tuple[Path, ...], **flags: object) -> None:
    """Evaluate a trained checkpoint on a split; settings come from its recipe.json.

    Without -c, `-m MODEL -g -d DATA` evaluates the untrained model (a zero-shot baseline) with
    the same prompt and scoring; the prompt options are prepare's.
    """
    # Lazy for start-up: the eval stage pulls numpy and matplotlib; --help stays instant.
    from rvl_llm.evaluate.outputs import RELIABILITY_PNG, summary_table
    from rvl_llm.evaluate.run import run_eval

    if more_test_sets and not flags.get("test_sets"):
        raise RvlError(f"{more_test_sets[0]}: unexpected argument (eval takes files only after "
                       "--test-sets)")
    flags["test_sets"] = (*flags.get("test_sets", ()), *more_test_sets)  # type: ignore[misc]
    cfg = EvalConfig.from_flags(**flags)
    result = run_eval(cfg, log=lambda msg: click.echo(msg, err=True))
    if result is None:  # another process of a launch: the main one prints
        return
    click.echo(summary_table(result.record))
    click.echo(f"confusion matrix: {result.folder / 'confusion_matrix.png'}")
    if (result.folder / RELIABILITY_PNG).exists():
        click.echo(f"reliability diagram: {result.folder / RELIABILITY_PNG}")
    click.echo(str(result.folder))


@click.command("report")
@config_file_option
@click.argument("out_dir", type=click.Path(path_type=Path))
def report_command(out_dir: Path) -> None:
    """Gather OUT_DIR/*-max-len/*/metrics.json into report.md, report.csv and a plot; a
    metrics.json that cannot be read or holds impossible values is named and skipped."""
    from rvl_llm.evaluate.report import run_report  # lazy for start-up, as above

    click.echo(run_report(out_dir, log=lambda msg: click.echo(msg, err=True)))
