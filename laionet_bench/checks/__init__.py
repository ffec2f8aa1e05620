"""Robustness checks: gap assertions, per-class baselines and the tolerance rule (the library behind the plugin)."""
