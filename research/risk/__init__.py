"""Risk: metrics (pure functions), overfitting statistics for sweeps, and the risk report.

:mod:`research.risk.metrics` imports nothing from ``research`` and may be used from any layer.
Figures live in :mod:`research.viz.risk`; this package only computes. Names are imported on
first use, so a module that needs only the metrics does not load the overfitting statistics or
the report.
"""

from __future__ import annotations

from research.lazy import lazy_exports

_EXPORTS: dict[str, str | tuple[str, str]] = {
    "summary": "metrics", "SUMMARY_KEYS": "metrics", "risk_report": "report", "RiskReport": "report",
    "deflated_sharpe_ratio": "overfitting", "DeflatedSharpeResult": "overfitting",
    "probability_of_backtest_overfitting": "overfitting", "PBOResult": "overfitting",
}
__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
