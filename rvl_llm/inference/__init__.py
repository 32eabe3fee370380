"""The inference layer below train and evaluate: loading a checkpoint from its recipe, exact label
scoring and the metrics. Validation (train), eval and predict all go through it, so one document
gets one score whichever stage asks. Nothing heavy is imported here.
"""

from enum import StrEnum


class Decode(StrEnum):
    """How a prediction is read off the model; a str, so records and folder names hold its value.

    Generative models: ``SCORE`` ranks every class's completion exactly; ``GENERATE`` decodes
    greedily (the old eval, kept for comparison). A classifier reads its head (``HEAD``), with
    no choice to make.
    """

    SCORE = "score"
    GENERATE = "generate"
    HEAD = "classifier"


# What --decode offers (generative runs).
DECODES: tuple[str, ...] = (Decode.SCORE.value, Decode.GENERATE.value)
