"""Labels: forward returns and direction, horizon explicit, last rows unknown."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from research.data.sources.synthetic import synthetic_close_matrix
from research.features import direction, forward_returns

P = pd.Series([10.0, 11.0, 12.0, 11.0, 13.0, 14.0])


def test_forward_returns_by_hand_and_attrs():
    f = forward_returns(P, horizon=2)
    assert f.attrs == {"label": "forward_return", "horizon": 2, "log": False}
    assert f.iloc[0] == pytest.approx(0.2)
    assert f.iloc[3] == pytest.approx(14 / 11 - 1)
    assert f.iloc[-2:].isna().all() and f.iloc[:-2].notna().all()
    assert forward_returns(P, horizon=1, log=True).iloc[0] == pytest.approx(np.log(1.1))


def test_direction_threshold_and_nan_tail():
    d = direction(P, horizon=1, threshold=0.05)
    # forward returns: +10%, +9.1%, -8.3%, +18.2%, +7.7%, NaN
    np.testing.assert_array_equal(d.to_numpy(), [1.0, 1.0, 0.0, 1.0, 1.0, np.nan])
    assert d.attrs == {"label": "direction", "horizon": 1, "threshold": 0.05}
    assert direction(P, horizon=1, threshold=0.095).iloc[1] == 0.0


def test_wide_frames_and_gaps():
    c = synthetic_close_matrix(3, 50)
    c.iloc[10, 1] = np.nan
    f = forward_returns(c, horizon=3)
    assert f.shape == c.shape
    assert f.iloc[-3:].isna().all().all()
    assert np.isnan(f.iloc[7, 1]) and np.isnan(f.iloc[10, 1])  # either end missing
    assert f.iloc[7, 0] == pytest.approx(c.iloc[10, 0] / c.iloc[7, 0] - 1)


@pytest.mark.parametrize("horizon", [0, -1, 1.5, True])
def test_horizon_must_be_a_positive_integer(horizon):
    with pytest.raises(ValueError, match="horizon must be an integer >= 1"):
        forward_returns(P, horizon=horizon)
