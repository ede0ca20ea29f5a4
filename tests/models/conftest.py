"""Small feature frames and datasets shared by the model tests (synthetic, in memory)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from research.models.datasets import forward_target, make_windows

LOOKBACK = 20
TINY = dict(lookback=LOOKBACK, units=8, layers=1, epochs=2, batch_size=64, patience=1)


def planted_frame(n: int = 700, *, seed: int = 0, signal: float = 0.8) -> tuple[pd.DataFrame, pd.Series]:
    """Features whose first column announces the next bar's return (a predictable market).

    ``close`` follows returns r_t; feature ``hint`` at t equals ``signal * r_{t+1}`` plus noise,
    so a model that reads it beats the random walk; the others are noise.
    """
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2015-01-01", periods=n, freq="B", tz="UTC", name="timestamp")
    r = rng.normal(0.0, 0.01, n)
    close = pd.Series(100 * np.cumprod(1 + r), index=idx, name="close")
    fwd = close.shift(-1) / close - 1
    feats = pd.DataFrame({
        "hint": (signal * fwd + rng.normal(0, 0.002, n)).fillna(0.0),
        "noise_a": rng.normal(size=n),
        "noise_b": rng.normal(size=n),
    }, index=idx)
    feats.iloc[:5] = np.nan  # warm-up rows
    return feats, close


@pytest.fixture
def frame() -> tuple[pd.DataFrame, pd.Series]:
    return planted_frame()


@pytest.fixture
def dataset(frame):
    feats, close = frame
    return make_windows(feats, forward_target(close, horizon=1), lookback=LOOKBACK, horizon=1)
