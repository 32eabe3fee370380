"""``rvl-llm ocr SOURCE -o OUT``: thin: flags -> OcrConfig -> run_ocr."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import click

from rvl_llm.errors import RvlError
from rvl_llm.ocr.config import OcrConfig, OcrSettings
from rvl_llm.ocr.run import run_ocr
from rvl_llm.options import click_options

SHOWN_BAD = 50  # bad inputs printed one a line; the count covers all


@click.command("ocr")
@click.argument("source", type=click.Path(path_type=Path))
@click_options(OcrSettings)
@click_options(OcrConfig)
def ocr_command(source: Path, **flags: object) -> None:
    """OCR scans (images, PDFs, RVL-CDIP, an image table) into the OCR JSON that prepare reads."""
    names = {f.name for f in fields(OcrSettings)}
    settings = OcrSettings(**{k: v for k, v in flags.items() if k in names})  # type: ignore[arg-type]
    rest = {k: v for k, v in flags.items() if k not in names}
    cfg = OcrConfig(source=source, settings=settings, **rest)  # type: ignore[arg-type]
    result = run_ocr(cfg, log=lambda msg: click.echo(msg, err=True))
    for where, reason in result.bad[:SHOWN_BAD]:
        click.echo(f"  bad: {where}: {reason}", err=True)
    if len(result.bad) > SHOWN_BAD:
        click.echo(f"  ... and {len(result.bad) - SHOWN_BAD} more bad inputs", err=True)
    click.echo(result.summary())
    if result.bad and not cfg.skip_bad_files:
        raise RvlError(f"SOURCE {source}: {len(result.bad)} bad inputs (named above), skipped; "
                       "the rest is written. Fix them and rerun (done documents are kept), or "
                       "pass --skip-bad-files")
