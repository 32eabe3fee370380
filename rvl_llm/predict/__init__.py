"""Predict: classify new documents with a trained checkpoint, with no labels and no prepared cache.

``inputs`` streams the documents from files, folders, JSON lines and standard input, in the order
given; ``outputs`` writes one record a document to standard output or, atomically, to a .jsonl,
.csv or .tsv file. Both are model-free (no torch import); the model side streams through them.
"""
