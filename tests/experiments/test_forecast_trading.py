"""Trading out-of-sample forecasts through the prediction strategy and the backtest engine."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from research.data.sources.synthetic import synthetic_ohlcv
from research.experiments.forecast_trading import TRADING_COLUMNS, trade_predictions
from research.experiments.training_config import TrainingConfig


def test_flat_hold_and_foresight_forecasts_trade_as_expected():
    ohlcv = synthetic_ohlcv("SYN0201", bars=260)
    ohlcv.attrs["symbol"] = "SYN0201"
    close = ohlcv["close"]
    span = ohlcv.index[60:-1]  # the out-of-sample forecasts
    fwd = (close.shift(-1) / close - 1).loc[span]
    # a forecast made at t's close fills at t+1's open: foresight of open-to-open moves pays
    o = ohlcv["open"]
    foresight = (o.shift(-2) / o.shift(-1) - 1).loc[span].fillna(0.0)
    rows = [("naive", np.zeros(len(span))), ("naive_mean", np.full(len(span), 0.001)), ("lstm", foresight.to_numpy())]
    preds = pd.concat([pd.DataFrame({"timestamp": span, "fold": 0, "seed": 0, "model": m, "predicted": p,
                                     "actual": fwd.to_numpy()}) for m, p in rows], ignore_index=True)
    table = trade_predictions(ohlcv, preds, TrainingConfig(fees=0.0))
    assert list(table.columns) == list(TRADING_COLUMNS) and list(table.index) == ["naive", "naive_mean", "lstm"]
    assert table.at["naive", "# Trades"] == 0 and table.at["naive", "Total Return [%]"] == 0
    assert table.at["naive_mean", "# Trades"] == 1  # always long = buy and hold
    hold = (close.iloc[-1] / o.loc[span[1]] - 1) * 100  # in at the first fill, valued at the last close
    assert table.at["naive_mean", "Total Return [%]"] == pytest.approx(hold, rel=0.02)
    assert table.at["lstm", "Total Return [%]"] > max(hold, 0) + 10
