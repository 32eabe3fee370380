"""Click commands of the eval stage: ``eval`` and ``report``.

Thin: flags -> EvalConfig -> run_eval. Only click is imported at load time (``--help`` is instant).
"""

from __future__ import annotations

from pathlib import Path

import click

from rvl_llm.inference import DECODES
from rvl_llm.pipeline.manifest import SPLITS


@click.command("eval")
@click.option("-c", "--checkpoint", required=True, type=click.Path(path_type=Path),
              help="A run's final/ or checkpoint-N/ folder (or the run folder: its final/).")
@click.option("-d", "--data", "data_dir", type=click.Path(path_type=Path), default=None,
              help="Folder of OCR JSON files [the recipe's data_dir].")
@click.option("--max-len", type=int, default=None,
              help="Tokens per document row [the max-len the run trained with].")
@click.option("-o", "--out-dir", type=click.Path(path_type=Path), default=None,
              help="Outputs go to OUT_DIR/<max-len>-max-len/<run>/ [CHECKPOINT/eval].")
@click.option("-b", "--batch-size", type=int, default=8, show_default=True,
              help="Documents per forward pass.")
@click.option("--split", type=click.Choice(SPLITS), default="test", show_default=True)
@click.option("--decode", type=click.Choice(DECODES), default="score", show_default=True,
              help="Generative runs: score every class name, or generate greedily (old eval).")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
              help="Prepared-shard cache [the recipe's cache_dir].")
@click.option("--class-chunk", type=int, default=None,
              help="Classes scored per forward pass, to bound memory [all].")
@click.option("--progress/--no-progress", default=None, help="Progress bar [on a terminal].")
def eval_command(**flags: object) -> None:
    """Evaluate a trained checkpoint on a split; settings come from its recipe.json."""
    from rvl_llm.evaluate.config import EvalConfig
    from rvl_llm.evaluate.outputs import summary_table
    from rvl_llm.evaluate.run import run_eval

    result = run_eval(EvalConfig(**flags), log=lambda msg: click.echo(msg, err=True))
    click.echo(summary_table(result.record))
    click.echo(f"confusion matrix: {result.folder / 'confusion_matrix.png'}")
    click.echo(str(result.folder))


@click.command("report")
@click.argument("out_dir", type=click.Path(path_type=Path))
def report_command(out_dir: Path) -> None:
    """Gather OUT_DIR/*-max-len/*/metrics.json into report.md, report.csv and a plot."""
    from rvl_llm.evaluate.report import run_report

    click.echo(run_report(out_dir))
