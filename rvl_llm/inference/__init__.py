"""The inference layer below train and evaluate: loading a checkpoint from its recipe, exact label
scoring and the metrics. Validation (train), eval and predict all go through it, so one document
gets one score whichever stage asks. Nothing heavy is imported here.
"""

# Generative models only: "score" ranks every class's completion; "generate" decodes greedily
# (the old eval, kept for comparison).
DECODES = ("score", "generate")
