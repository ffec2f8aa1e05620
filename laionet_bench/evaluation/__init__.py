"""Evaluation: the decode-once engine, the prediction store, ``evaluate()``, the paper's metrics, result records."""
