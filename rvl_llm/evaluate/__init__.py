"""Evaluate: a checkpoint scored on a prepared split -> metrics, predictions, plots, report.

``run.run_eval`` is the eval stage. Scoring and metrics are the inference layer's
(``rvl_llm.inference``), which train validates with too; evaluate never imports train.
"""
