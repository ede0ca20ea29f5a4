"""Risk: metrics (pure functions), overfitting statistics for sweeps, and the risk report.

:mod:`research.risk.metrics` imports nothing from ``research`` and may be used from any layer.
Figures live in :mod:`research.viz.risk`; this package only computes.
"""

from research.risk.metrics import SUMMARY_KEYS, summary

__all__ = ["summary", "SUMMARY_KEYS"]
