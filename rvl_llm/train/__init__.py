"""Train: prepared shards -> a fine-tuned classifier or generative model in ``log/NAME/``
(``run_train`` in ``run.py``). Nothing heavy is imported here."""
