"""Evaluate: a checkpoint scored on a prepared split -> metrics, predictions, plots, report.

``scoring.predict`` is also what train validates with; ``run.run_eval`` is the eval stage.
"""
