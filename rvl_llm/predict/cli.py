"""``rvl-llm predict``: flags -> PredictConfig -> run_predict. Imports nothing heavy at load time.

Records go to standard output (JSON lines) or to ``-o``; everything else (progress, skipped
inputs, the summary) goes to standard error, so the output can be piped.
"""

from __future__ import annotations

import click

from rvl_llm.config_file import config_file_option
from rvl_llm.errors import RvlError
from rvl_llm.options import click_options
from rvl_llm.predict.config import PredictConfig


@click.command("predict")
@config_file_option
@click.argument("inputs", nargs=-1, metavar="INPUT...")
@click_options(PredictConfig)
def predict_command(**flags: object) -> None:
    """Label documents with a trained checkpoint: OCR JSON files, tables (.jsonl, .csv,
    .parquet: one document a row, text in "ocr" or "text", optional "id"), .txt files, scans
    (images, PDFs: OCR'd on the fly), folders of these, or - for JSON lines on standard input.
    One record per document, in input order: id, label, probability, top_k, truncated."""
    # Lazy for start-up: the run pulls numpy, the OCR readers and the model loaders.
    from rvl_llm.predict.run import run_predict

    cfg = PredictConfig(**flags)  # type: ignore[arg-type]
    result = run_predict(cfg, log=lambda msg: click.echo(msg, err=True))
    if not result.is_main:
        return
    click.echo(result.summary(), err=True)
    if result.skipped and not cfg.allow_skips:
        raise RvlError(f"{len(result.skipped)} inputs skipped (listed above; the first: "
                       f"{result.skipped[0].source}); the {result.documents} others were "
                       "written; --allow-skips exits 0")
