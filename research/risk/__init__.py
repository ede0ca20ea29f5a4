"""Risk: metrics (pure functions), overfitting statistics for sweeps, and the risk report.

:mod:`research.risk.metrics` imports nothing from ``research`` and may be used from any layer.
Figures live in :mod:`research.viz.risk`; this package only computes.
"""

from research.risk.metrics import SUMMARY_KEYS, summary
from research.risk.overfitting import (
    DeflatedSharpeResult,
    PBOResult,
    deflated_sharpe_ratio,
    probability_of_backtest_overfitting,
)
from research.risk.report import RiskReport, risk_report

__all__ = [
    "summary", "SUMMARY_KEYS", "risk_report", "RiskReport", "deflated_sharpe_ratio",
    "DeflatedSharpeResult", "probability_of_backtest_overfitting", "PBOResult",
]
