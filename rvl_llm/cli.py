"""The ``rvl-llm`` command: one click group; each stage brings its own commands.

Every command module imports only click at load time, so ``rvl-llm --help`` is instant.
"""

from __future__ import annotations

import click

from rvl_llm import __version__
from rvl_llm.evaluate.cli import eval_command, report_command
from rvl_llm.export.cli import export_command
from rvl_llm.ocr.cli import ocr_command
from rvl_llm.pipeline.cli import cache_group, prepare_command
from rvl_llm.predict.cli import predict_command
from rvl_llm.presets import load_presets
from rvl_llm.train.cli import train_command


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="rvl-llm")
def main() -> None:
    """Fine-tune LLMs to classify documents from their OCR text."""
    import logging

    # bitsandbytes (imported by peft whatever the trainable mode) warns on every CPU run that
    # it cannot fetch an optional kernel from the hub; nothing here can or needs to fetch it.
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)


@main.command("presets")
def presets_command() -> None:
    """List the model presets."""
    for name, preset in load_presets().items():
        click.echo(
            f"{name:<14} {preset.model:<30} trainable={preset.trainable:<6} "
            f"pad={preset.pad_token}  {preset.description}"
        )


for command in (ocr_command, prepare_command, cache_group, train_command, eval_command,
                report_command, predict_command, export_command):
    main.add_command(command)
