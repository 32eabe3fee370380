"""Predict: classify new documents with a trained checkpoint, with no labels and no prepared cache.

``inputs`` streams the documents in the order given; ``outputs`` writes one record a document.
Both are model-free (no torch import).
"""
