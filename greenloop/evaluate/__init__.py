"""Evaluation: pass@k, summaries and reports."""

from greenloop.evaluate.passk import pass_at_k, pass_at_k_table

__all__ = ["pass_at_k", "pass_at_k_table"]
