"""Train: prepared shards -> a fine-tuned classifier or generative model in ``log/NAME/``.

``run_train(cfg)`` in ``run.py`` is the entry point; ``load_checkpoint`` in ``checkpoint.py``
rebuilds a trained model for evaluation. Nothing heavy is imported here.
"""
