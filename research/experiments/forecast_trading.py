"""Trade out-of-sample forecasts through the prediction strategy and the backtest layer.

Each model's pooled out-of-sample forecasts (first seed) become signals with
:func:`research.strategies.signals.prediction_signals` (long when the forecast is above
``long_threshold``; short below ``short_threshold`` when set) and run through
:func:`research.backtest.backtest` on the evaluated span with the configured fees and
slippage, under the workbench's execution model (a forecast made at the close of ``t`` fills
at the open of ``t + 1``). The naive zero forecast never trades (flat); the drift forecast is
buy-and-hold; so the table reads as "what acting on each forecast would have earned".
"""

from __future__ import annotations

import logging
import warnings

import pandas as pd

from research.backtest import backtest
from research.experiments.training_config import TrainingConfig
from research.strategies.signals import prediction_signals

__all__ = ["trade_predictions", "TRADING_COLUMNS"]

log = logging.getLogger(__name__)
TRADING_COLUMNS = ("Total Return [%]", "Return (Ann.) [%]", "Sharpe Ratio", "Max. Drawdown [%]", "# Trades")


def trade_predictions(ohlcv: pd.DataFrame, predictions: pd.DataFrame, cfg: TrainingConfig) -> pd.DataFrame:
    """Backtest stats of trading each model's out-of-sample forecasts, one row per model.

    Parameters
    ----------
    ohlcv : pandas.DataFrame
        The symbol's bars (the evaluated span is cut from it).
    predictions : pandas.DataFrame
        The predictions table of :mod:`research.models.evaluate`.
    cfg : TrainingConfig
        ``long_threshold``, ``short_threshold``, ``fees``, ``slippage``.

    Returns
    -------
    pandas.DataFrame
        Index ``model``; columns :data:`TRADING_COLUMNS`.
    """
    first_seed = predictions.groupby("model", sort=False)["seed"].min()
    start = predictions["timestamp"].min()
    prices = ohlcv.loc[start:]
    prices.attrs = ohlcv.attrs
    rows = {}
    for model, seed in first_seed.items():
        g = predictions[(predictions["model"] == model) & (predictions["seed"] == seed)]
        pred = pd.Series(g["predicted"].to_numpy(), index=pd.DatetimeIndex(g["timestamp"]), name=ohlcv.attrs.get("symbol", "asset"))
        pred = pred.reindex(prices.index)  # bars after the last forecast are flat
        threshold = cfg.long_threshold if cfg.target == "return" else max(cfg.long_threshold, 0.5)
        signals = prediction_signals(pred, long_threshold=threshold, short_threshold=cfg.short_threshold)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = backtest(prices, signals, fees=cfg.fees, slippage=cfg.slippage)
        stats = res.summary()
        rows[model] = {c: float(stats.get(c, float("nan"))) for c in TRADING_COLUMNS}
    out = pd.DataFrame.from_dict(rows, orient="index", columns=list(TRADING_COLUMNS))
    out.index.name = "model"
    return out
