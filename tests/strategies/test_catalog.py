"""The strategy catalog: names, typed parameters from strings, and running by name."""

from __future__ import annotations

import pandas as pd
import pytest

from research.data.sources.synthetic import synthetic_close_matrix, synthetic_ohlcv
from research.strategies import STRATEGIES, get_strategy, list_strategies, ma_crossover


def test_every_strategy_runs_with_its_defaults():
    close = synthetic_close_matrix(2, 300, seed=1)
    preds = close.pct_change().shift(-1).fillna(0.0) * 0 + 0.001
    bars = {s: synthetic_ohlcv(s, bars=300, seed=1) for s in close.columns}
    fields = {f: pd.DataFrame({s: b[f] for s, b in bars.items()}) for f in ("open", "high", "low", "close")}
    for name, spec in STRATEGIES.items():
        params = {"predictions": preds} if spec.input == "predictions" else {}
        sig = spec.run(fields if spec.input == "ohlc" else {"close": close}, **params)
        assert sig.direction.shape == close.shape, name
        assert sig.name == name


def test_coerce_converts_cli_strings():
    spec = get_strategy("ma_crossover")
    assert spec.coerce({"fast": "10", "direction": "both"}) == {"fast": 10, "slow": 50, "direction": "both"}
    rsi = get_strategy("rsi_reversion").coerce({"lower": "25"})
    assert rsi["lower"] == 25.0 and isinstance(rsi["lower"], float)
    pred = get_strategy("prediction").coerce({"short_threshold": "-0.001"})
    assert pred["short_threshold"] == -0.001
    assert get_strategy("prediction").coerce({"short_threshold": "none"})["short_threshold"] is None
    with pytest.raises(ValueError, match="no parameter 'speed'"):
        spec.coerce({"speed": "1"})
    with pytest.raises(ValueError, match="expects int"):
        spec.coerce({"fast": "ten"})


def test_run_by_name_equals_the_function():
    close = synthetic_close_matrix(2, 300, seed=2)
    a = get_strategy("ma_crossover").run({"close": close}, fast="5", slow="30")
    pd.testing.assert_frame_equal(a.direction, ma_crossover(close, fast=5, slow=30).direction)


def test_unknown_and_listing():
    with pytest.raises(ValueError, match="unknown strategy 'nope'"):
        get_strategy("nope")
    table = list_strategies()
    assert {"ma_crossover", "rsi_reversion", "bollinger_breakout", "time_series_momentum", "candlestick",
            "prediction"} <= set(table.index)
    with pytest.raises(ValueError, match="predictions"):
        get_strategy("prediction").run({"close": pd.DataFrame()})
