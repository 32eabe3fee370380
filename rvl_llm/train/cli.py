"""``rvl-llm train``: flags -> TrainConfig -> run_train. Imports nothing heavy at load time."""

from __future__ import annotations

import click

from rvl_llm.config_file import config_file_option
from rvl_llm.train.config import TrainConfig, train_options


@click.command("train")
@config_file_option
@train_options
def train_command(**flags: object) -> None:
    """Fine-tune a model to classify documents; the result lands in LOG_DIR/NAME/final."""
    # Lazy for start-up: the run pulls the whole training stack; --help stays instant.
    from rvl_llm.train.run import run_train

    run_train(TrainConfig.from_flags(**flags))
