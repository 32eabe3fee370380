"""Train: prepared shards -> a fine-tuned classifier or generative model in ``log/NAME/``.

``run_train(cfg)`` in ``run.py`` is the entry point. Loading a trained checkpoint back is the
inference layer's (``rvl_llm.inference.checkpoint``); train never imports evaluate. Nothing heavy
is imported here.
"""
