"""Helpers for the tracking tests: a planted, predictable feature set for the training cycle."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


def planted_features(ohlcv: pd.DataFrame, name: str = "lstm") -> pd.DataFrame:
    """A feature set that *knows* the next bar's return (look-ahead planted on purpose).

    Only for testing the promotion path: a model reading ``hint`` beats the random walk out of
    sample, so the cycle must register it and make it champion.
    """
    rng = np.random.default_rng(11)
    close = ohlcv["close"]
    fwd = (close.shift(-1) / close - 1).fillna(0.0)
    n = len(close)
    frame = pd.DataFrame({"hint": 0.8 * fwd + rng.normal(0, 0.001, n), "noise": rng.normal(size=n)}, index=ohlcv.index)
    frame.iloc[:3] = np.nan
    return frame


@pytest.fixture
def planted(monkeypatch):
    """Make the training cycle use :func:`planted_features`."""
    import research.experiments.cycle as ex

    monkeypatch.setattr(ex, "feature_set", planted_features)
    return planted_features
