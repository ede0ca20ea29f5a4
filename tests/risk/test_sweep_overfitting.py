"""Overfitting figures of a moving-average sweep, and the risk document the pipelines publish."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from research.backtest.sweep import sweep_ma_crossover
from research.data import load_prices
from research.risk import metrics
from research.risk.overfitting import (
    deflated_sharpe_ratio,
    probability_of_backtest_overfitting,
    sweep_overfitting,
)
from research.risk.report import PER_SYMBOL_KEYS, risk_document, risk_report


@pytest.fixture(scope="module")
def sweeps():
    prices = load_prices(["GOOG", "SPX"], progress=False)
    full = sweep_ma_crossover(prices, fast=[2, 5, 10, 20], slow=[30, 50, 100], fees=0.001, slippage=0.0005)
    small = sweep_ma_crossover(prices, fast=[5, 20], slow=[30, 100], fees=0.001, slippage=0.0005)
    return full, small


def test_the_best_cell_is_deflated_over_every_cell_of_the_grid(sweeps):
    full, small = sweeps
    out = sweep_overfitting(full, "SPX", pbo_sweep=small, n_splits=8, max_combinations=50)
    rows = full.table[full.table["symbol"] == "SPX"]
    best = rows.loc[rows["sharpe"].idxmax()]
    assert (out["fast"], out["slow"], out["pairs"]) == (int(best["fast"]), int(best["slow"]), 12)
    ppy = full.params["periods_per_year"]
    dsr = deflated_sharpe_ratio(full.trial_returns("SPX")[(out["fast"], out["slow"])],
                                trial_sharpes=rows["sharpe"].to_numpy() / math.sqrt(ppy))
    assert out["deflated_sharpe"] == pytest.approx(dsr.dsr) and out["dsr_trials"] == 12
    assert out["expected_max_sharpe"] == pytest.approx(dsr.expected_max_sharpe * math.sqrt(ppy))
    pbo = probability_of_backtest_overfitting(small.trial_returns("SPX").to_numpy(), n_splits=8, max_combinations=50, seed=0)
    assert out["pbo"] == pytest.approx(pbo.pbo) and out["pbo_trials"] == 4


def test_without_a_pbo_grid_there_is_no_pbo_and_a_short_history_gives_a_note(sweeps):
    full, _ = sweeps
    assert "pbo" not in sweep_overfitting(full, "GOOG")
    out = sweep_overfitting(full, "GOOG", pbo_sweep=sweep_ma_crossover(
        load_prices("GOOG").iloc[:120], fast=[2, 5], slow=[30, 50], fees=0.0, slippage=0.0), n_splits=64)
    assert "pbo_note" in out and "pbo" not in out


def _curves() -> tuple[pd.Series, pd.Series, dict[str, pd.Series]]:
    idx = pd.bdate_range("2020-01-01", periods=300)
    rng = np.random.default_rng(3)
    a, b = (pd.Series(rng.normal(4e-4, 0.01, len(idx)), idx) for _ in range(2))
    return (a + b) / 2, pd.Series(rng.normal(2e-4, 0.012, len(idx)), idx), {"A": a, "B": b}


def test_the_risk_document_holds_the_book_its_benchmark_and_each_symbol():
    book, bench, per = _curves()
    doc = risk_document(book, benchmark=bench, per_symbol=per, periods_per_year=252)
    rep = risk_report(book, benchmark=bench, periods_per_year=252)
    assert doc["summary"]["Sharpe Ratio"] == pytest.approx(rep.summary["Sharpe Ratio"])
    assert doc["benchmark"]["return_ann_pct"] == pytest.approx(100 * metrics.annualized_return(bench, periods_per_year=252))
    assert doc["benchmark"]["return_ann_pct"] == pytest.approx(100 * ((1 + bench).prod() ** (252 / len(bench)) - 1))
    assert set(doc["per_symbol"]) == {"A", "B"} and set(doc["per_symbol"]["A"]) == set(PER_SYMBOL_KEYS)
    assert doc["drawdown"]["max"] == pytest.approx(rep.drawdown.min()) and doc["start"] == book.index[0]
    assert risk_document(book, periods_per_year=252)["benchmark"]["return_ann_pct"] is None
