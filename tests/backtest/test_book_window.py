"""A symbol that starts late is measured over its own life, not the union of all dates."""

from __future__ import annotations

import numpy as np
import pytest

from research.backtest import backtest
from research.data import load_prices


def test_late_listing_does_not_dilute_annualised_figures(store):
    both = load_prices(["MSFT", "GOOG"], store=store)  # MSFT from 1986, GOOG from 2004
    alone = load_prices("GOOG", store=store)
    joint = backtest(both, "ma_crossover", params={"fast": 20, "slow": 50}, fees=0.001)
    single = backtest(alone, "ma_crossover", params={"fast": 20, "slow": 50}, fees=0.001)
    a, b = joint.summary("GOOG"), single.summary()
    assert a["# Periods"] == b["# Periods"] == len(alone)
    for key in ["Total Return [%]", "Return (Ann.) [%]", "Sharpe Ratio", "Max. Drawdown [%]"]:
        assert a[key] == pytest.approx(b[key], rel=1e-9, abs=1e-12), key
    assert np.isfinite(a["Return (Ann.) [%]"])
