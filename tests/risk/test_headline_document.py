"""The headline figures every page shows: the book's and its benchmark's, over the same bars."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from research.risk import metrics
from research.risk.report import BENCHMARK_NAME, HEADLINE_KEYS, headline_document, risk_document


@given(st.integers(30, 200), st.integers(0, 25), st.integers(0, 10_000))
def test_the_benchmark_is_measured_over_exactly_the_books_bars(bars, late, seed):
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2020-01-01", periods=bars + late, freq="B", tz="UTC")
    prices = pd.DataFrame(100 * np.cumprod(1 + rng.normal(0, 0.01, (len(idx), 3)), axis=0), index=idx,
                          columns=["A", "B", "C"])
    book = pd.Series(rng.normal(0, 0.01, bars), index=idx[late:])  # the book starts later than the prices
    doc = headline_document(book, metrics.equal_weight_returns(prices), periods_per_year=252,
                            subject={"strategy": "s", "symbols": ["A", "B", "C"]})
    bench = metrics.equal_weight_returns(prices).loc[book.index].dropna()
    assert doc["benchmark"]["Total Return [%]"] == pytest.approx(metrics.total_return(bench) * 100)
    assert doc["book"]["Total Return [%]"] == pytest.approx(metrics.total_return(book) * 100)
    assert set(doc["book"]) == set(doc["benchmark"]) == set(HEADLINE_KEYS)
    assert doc["subject"]["start"] == book.index[0] and doc["subject"]["end"] == book.index[-1]
    assert doc["subject"]["bars"] == bars and doc["benchmark_name"] == BENCHMARK_NAME


def test_the_risk_document_carries_the_headline_with_its_subject():
    idx = pd.date_range("2020-01-01", periods=100, freq="B", tz="UTC")
    rng = np.random.default_rng(1)
    book = pd.Series(rng.normal(0, 0.01, 100), index=idx)
    doc = risk_document(book, benchmark=book * 0.5, per_symbol={"X": book, "Y": book}, periods_per_year=252,
                        meta={"strategy": "ma_crossover"})
    head = doc["headline"]
    assert head["subject"]["strategy"] == "ma_crossover" and head["subject"]["symbols"] == ["X", "Y"]
    assert head["book"]["Sharpe Ratio"] == pytest.approx(doc["summary"]["Sharpe Ratio"])
    assert doc["benchmark"]["name"] == BENCHMARK_NAME
