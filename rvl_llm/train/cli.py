"""``rvl-llm train``: flags -> TrainConfig -> run_train. Imports nothing heavy at load time."""

from __future__ import annotations

from pathlib import Path

import click

from rvl_llm.pipeline.cli import data_options
from rvl_llm.presets import TRAINABLE_MODES
from rvl_llm.train.config import BARE_FLAG, MIXED_PRECISION, REPORT_TO, SAVE_CHOICES, TrainConfig


@click.command("train")
@data_options
@click.option("--name", required=True, help="Run name: the run is kept in LOG_DIR/NAME.")
@click.option("-m", "--model", required=True, help="Preset, local folder or hub id.")
@click.option("-g", "--generative", is_flag=True,
              help="Learn to complete the class name after the response template.")
@click.option("--max-len", default=512, show_default=True, type=int,
              help="Tokens per document, special tokens and completion included.")
@click.option("--set-pad-token", is_flag=False, flag_value=BARE_FLAG, default=None,
              metavar="[TOKEN]", help="Pad token; bare flag: the preset's, else unk, else eos.")
@click.option("--split-model", is_flag=True,
              help="Spread the layers over all visible GPUs (single process only).")
@click.option("-l", "--lr", type=float, default=None,
              help="Learning rate [the preset's, else 1e-4].")
@click.option("-b", "--batch-size", default=8, show_default=True, type=int,
              help="Documents per device and step.")
@click.option("-n", "--num-epochs", default=10, show_default=True, type=int)
@click.option("--weight-decay", default=0.1, show_default=True, type=float)
@click.option("-r", "--lora-rank", default=4, show_default=True, type=int)
@click.option("-a", "--lora-alpha", default=8, show_default=True, type=int)
@click.option("--lora-dropout", default=0.2, show_default=True, type=float)
@click.option("--trainable", type=click.Choice(TRAINABLE_MODES), default=None,
              help="What is trained [the preset's, else qlora].")
@click.option("--mixed-precision", type=click.Choice(MIXED_PRECISION), is_flag=False,
              flag_value="auto", default=None,
              help="Autocast dtype; bare flag: auto (bf16 where supported, else fp16) [fp32].")
@click.option("--save", type=click.Choice(SAVE_CHOICES), default="epoch", show_default=True,
              help="Checkpoints: each epoch, one at the end, or none (final/ is always written).")
@click.option("--unsloth", is_flag=True, help="Load and train with unsloth (CUDA GPU).")
@click.option("--seed", default=1234, show_default=True, type=int)
@click.option("--gradient-accumulation", default=1, show_default=True, type=int,
              help="Micro-batches per optimiser step.")
@click.option("--gradient-checkpointing", is_flag=True,
              help="Recompute activations in the backward pass: less memory, slower.")
@click.option("--resume", is_flag=True, help="Continue the run NAME from its newest checkpoint.")
@click.option("--overwrite", is_flag=True, help="Replace a run of the same NAME.")
@click.option("--report-to", type=click.Choice(REPORT_TO), default="none", show_default=True)
@click.option("--log-dir", type=click.Path(path_type=Path), default=Path("log"),
              show_default=True)
def train_command(**flags: object) -> None:
    """Fine-tune a model to classify documents; the result lands in LOG_DIR/NAME/final."""
    from rvl_llm.train.run import run_train

    run_train(TrainConfig(**flags))  # type: ignore[arg-type]
