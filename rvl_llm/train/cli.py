"""``rvl-llm train``: flags -> TrainConfig -> run_train. Imports nothing heavy at load time.

The options come from the config fields (``rvl_llm.options``): the prepare settings of
PrepareConfig, the training settings of TrainSettings and the run's own of TrainConfig.
"""

from __future__ import annotations

import click

from rvl_llm.config_file import config_file_option
from rvl_llm.options import click_options
from rvl_llm.pipeline.config import PrepareConfig
from rvl_llm.recipe import TrainSettings
from rvl_llm.train.config import TrainConfig


@click.command("train")
@config_file_option
@click_options(PrepareConfig, exclude=("splits",))  # training prepares train and validation
@click_options(TrainConfig)
@click_options(TrainSettings)
def train_command(**flags: object) -> None:
    """Fine-tune a model to classify documents; the result lands in LOG_DIR/NAME/final."""
    from rvl_llm.train.run import run_train

    run_train(TrainConfig.from_flags(**flags))
